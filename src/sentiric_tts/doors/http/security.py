"""API keys on HTTP requests and WebSockets (the keys and limits themselves: callers.py)."""

from __future__ import annotations

from fastapi import HTTPException
from starlette.requests import HTTPConnection

from sentiric_tts.callers import ApiKeys, key_from_headers
from sentiric_tts.failures import Unauthorized


def presented_key(connection: HTTPConnection) -> str | None:
    return key_from_headers(connection.headers.get("authorization"), connection.headers.get("x-api-key"))


def check_key(keys: ApiKeys, connection: HTTPConnection) -> str:
    """`keys.identify` for an HTTP request or WebSocket; 401 when the key is missing or wrong."""
    address = connection.client.host if connection.client else "unknown"
    try:
        return keys.identify(presented_key(connection), address)
    except Unauthorized as exc:
        raise HTTPException(401, exc.message, headers={"WWW-Authenticate": "Bearer"}) from exc
