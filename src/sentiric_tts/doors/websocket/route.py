"""WebSocket door for voice agents: /ws/tts (protocol in docs/api.md and in session.py)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, WebSocket

from sentiric_tts.callers import key_from_headers
from sentiric_tts.doors.websocket.session import SHUTTING_DOWN_CLOSE, SHUTTING_DOWN_MESSAGE, SpeechSession
from sentiric_tts.failures import NOT_READY_MESSAGE, Unauthorized
from sentiric_tts.observability.context import choose_request_id, request_id_var
from sentiric_tts.runtime import Runtime

router = APIRouter()


@router.websocket("/ws/tts")
async def ws_tts(socket: WebSocket) -> None:
    runtime: Runtime = socket.app.state.runtime
    headers = socket.headers
    token = request_id_var.set(choose_request_id(headers.get("x-request-id"), headers.get("x-trace-id")))
    try:
        await socket.accept()
        # Browsers cannot set headers on a WebSocket: the key may come as ?api_key= too.
        key = key_from_headers(headers.get("authorization"), headers.get("x-api-key"))
        key = key or socket.query_params.get("api_key")
        address = socket.client.host if socket.client else "unknown"
        try:
            client = runtime.api_keys.identify(key, address)
        except Unauthorized as exc:
            await socket.send_json({"type": "error", "code": "unauthorized", "message": exc.message})
            await socket.close(1008)
            return
        if runtime.draining:
            await socket.send_json(
                {"type": "error", "code": "shutting_down", "message": SHUTTING_DOWN_MESSAGE}
            )
            await socket.close(SHUTTING_DOWN_CLOSE)
            return
        if not runtime.ready:
            await socket.send_json({"type": "error", "code": "not_ready", "message": NOT_READY_MESSAGE})
            await socket.close(1013)
            return
        session = SpeechSession(runtime, socket, client)
        loop = asyncio.get_running_loop()

        def shutting_down() -> None:  # Runtime.begin_shutdown, on any thread
            loop.call_soon_threadsafe(session.shut_down)

        runtime.shutdown_listeners.append(shutting_down)
        try:
            await session.run()
        finally:
            runtime.shutdown_listeners.remove(shutting_down)
    finally:
        request_id_var.reset(token)
