"""The current request's id, carried into every log line written while serving it."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")


def choose_request_id(*candidates: str | None) -> str:
    """The first client-sent id that is safe to log and echo, else a new one."""
    for candidate in candidates:
        if candidate and _SAFE_ID.match(candidate):
            return candidate
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record (handlers' formatters may then print it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True
