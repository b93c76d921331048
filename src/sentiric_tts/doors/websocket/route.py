"""WebSocket door for voice agents: /ws/tts (protocol in docs/api.md and in session.py)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, WebSocket

from sentiric_tts.callers import key_from_headers
from sentiric_tts.doors.admission import admit
from sentiric_tts.doors.websocket.session import SHUTTING_DOWN_CLOSE, SpeechSession
from sentiric_tts.failures import Failure, NotReady, ShuttingDown, Unauthorized, problem
from sentiric_tts.observability.context import choose_request_id, request_id_var
from sentiric_tts.runtime import Runtime

router = APIRouter()

# How a refused handshake closes: policy violation, service restart (reconnect at once), try later.
REFUSAL_CLOSE = {
    Failure.UNAUTHENTICATED: 1008,
    Failure.SHUTTING_DOWN: SHUTTING_DOWN_CLOSE,
    Failure.NOT_READY: 1013,
}


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
            caller = admit(runtime, key, address, "websocket")
        except (Unauthorized, ShuttingDown, NotReady) as exc:
            told = problem(exc)
            # "unauthorized": this door's name for it since its first release.
            code = "unauthorized" if told.kind is Failure.UNAUTHENTICATED else told.code
            await socket.send_json({"type": "error", "code": code, "message": told.message})
            await socket.close(REFUSAL_CLOSE[told.kind])
            return
        session = SpeechSession(runtime, socket, caller.client)
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
