"""Renders the table of docs/api.md that says how each kind of failure reads on every door.

`python -m sentiric_tts.failure_docs` rewrites the table between its markers; a test fails when it
drifts from the doors' own tables (doors/http/errors.py, doors/grpc/status.py).
"""

from __future__ import annotations

from pathlib import Path

from sentiric_tts.doors.grpc.status import GRPC_STATUS
from sentiric_tts.doors.http.errors import HTTP_STATUS, openai_status
from sentiric_tts.failures import Failure

API_GUIDE = Path("docs") / "api.md"
START, END = "<!-- failure-table:start -->", "<!-- failure-table:end -->"

_MEANING: dict[Failure, str] = {
    Failure.INVALID: "the request cannot be served as sent; the message says what to change",
    Failure.NOT_FOUND: "a voice or clip that does not exist for this caller",
    Failure.CONFLICT: "the service's state forbids it (a name taken, cloning on Piper)",
    Failure.UNSUPPORTED: "a valid request for something this service does not do",
    Failure.TOO_LARGE: "an upload or body over its limit",
    Failure.STORAGE_FULL: "the data folder's (or the library database's) disk is full; nothing was changed",
    Failure.BUSY: "the queue is full, or the shared voice library's database cannot be reached; retry after the given seconds",
    Failure.RATE_LIMITED: "this caller's rate or stream allowance is spent; retry after the given seconds",
    Failure.UNAUTHENTICATED: "an API key is required and was missing or wrong",
    Failure.DEADLINE: "the request ran past `TTS_REQUEST_TIMEOUT_SECONDS` (or the call's deadline)",
    Failure.NOT_READY: "the service is starting",
    Failure.SHUTTING_DOWN: "the service is shutting down",
    Failure.ENGINE_FAILURE: 'the engine failed: the client reads "The engine failed; the error is logged."',
    Failure.ENGINE_UNAVAILABLE: "the engine serving the request went away mid-request (a cluster's "
    "engine replica lost); send it again",
    Failure.INTERNAL: 'anything else: the client reads "Internal error; it is logged."',
}


def render_failure_table() -> str:
    rows = [
        "| Failure | When | HTTP | OpenAI (`/v1`) | gRPC |",
        "|---|---|---|---|---|",
    ]
    for kind in Failure:
        rows.append(
            f"| `{kind}` | {_MEANING[kind]} | {HTTP_STATUS[kind]} | {openai_status(HTTP_STATUS[kind])} "
            f"| `{GRPC_STATUS[kind].name}` |"
        )
    return "\n".join(rows)


def write_failure_table(root: Path) -> None:
    guide = root / API_GUIDE
    text = guide.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    guide.write_text(f"{head}{START}\n{render_failure_table()}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    write_failure_table(Path("."))
