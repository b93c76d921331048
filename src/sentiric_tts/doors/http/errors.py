"""Failures on HTTP: one status per kind of failure (`HTTP_STATUS`), and one body shape,
{"error": {"code", "message", "param", "allowed"}} (OpenAI's error object on its routes)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sentiric_tts.doors.xtts_api import PREFIX as XTTS_API_PREFIX
from sentiric_tts.doors.xtts_streaming import PREFIX as XTTS_STREAMING_PREFIX
from sentiric_tts.failures import Failure, Problem, ServiceFailure, problem

# Declared on every synthesis route so the OpenAPI document tells clients what can come back.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body could not be parsed (not JSON, not UTF-8, broken multipart)."},
    401: {"description": "An API key is required and was missing or wrong."},
    422: {"description": "The request cannot be served as sent; `error.message` says why."},
    429: {"description": "Rate limit or concurrent-request limit reached; see `Retry-After`."},
    503: {"description": "The service is busy or not ready; retry after `Retry-After` seconds."},
    504: {"description": "The request ran past its deadline (`TTS_REQUEST_TIMEOUT_SECONDS`)."},
}


# Declared on the routes that write the voice library.
STORAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    507: {"description": "The data folder's disk is full (insufficient_storage); nothing was changed."},
}


def error_body(
    code: str, message: str, param: str | None = None, allowed: list[object] | None = None
) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "param": param, "allowed": allowed}}


def describe_validation_error(error: dict[str, Any]) -> tuple[str, str | None]:
    location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
    param = ".".join(location) or None
    message = str(error.get("msg", "invalid value"))
    if error.get("type") == "json_invalid":
        return "The body is not valid JSON: " + str(error.get("ctx", {}).get("error", message)), None
    if error.get("type") == "extra_forbidden":
        return f"Unknown field '{param}'. Check the field name against the API docs at /docs.", param
    if error.get("type") == "missing":
        return f"'{param}' is required.", param
    given = error.get("input")
    if param and given is not None and not isinstance(given, (dict, list)):
        return f"{param}: {message} (got {given!r}).", param
    return (f"{param}: {message}." if param else f"{message}."), param


OPENAI_PREFIX = "/v1/"
DETAIL_PREFIXES = (f"{XTTS_API_PREFIX}/", f"{XTTS_STREAMING_PREFIX}/")
"""Doors that stand in for FastAPI servers: their errors carry FastAPI's `detail` too."""
_OPENAI_TYPES = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}


def openai_status(status: int) -> int:
    """OpenAI's status for ours: it answers every bad field with a 400."""
    return 400 if status == 422 else status


def openai_error_body(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object, so its SDKs raise their own typed errors with our message."""
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    param: str | None = None,
    allowed: list[object] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Our error body, or OpenAI's on the OpenAI-compatible routes (where a bad field is a 400)."""
    status, body = error_payload(request.url.path, status, code, message, param, allowed)
    return JSONResponse(body, status, headers=headers)


def error_payload(
    path: str,
    status: int,
    code: str,
    message: str,
    param: str | None = None,
    allowed: list[object] | None = None,
) -> tuple[int, dict[str, Any]]:
    """The status and body of an error on `path`; also written by layers below the app (the
    HTTP protocol's 431 and 408, the body limit's 413)."""
    if path.startswith(OPENAI_PREFIX):
        status = openai_status(status)
        return status, openai_error_body(status, code, message, param)
    if path.startswith(DETAIL_PREFIXES):
        # FastAPI servers' shape ({"detail": ...}), which their clients show, beside ours.
        return status, {"detail": message, **error_body(code, message, param, allowed)}
    return status, error_body(code, message, param, allowed)


HTTP_STATUS: dict[Failure, int] = {
    Failure.INVALID: 422,
    Failure.NOT_FOUND: 404,
    Failure.CONFLICT: 409,
    Failure.UNSUPPORTED: 422,
    Failure.TOO_LARGE: 413,
    Failure.STORAGE_FULL: 507,
    Failure.BUSY: 503,
    Failure.RATE_LIMITED: 429,
    Failure.UNAUTHENTICATED: 401,
    Failure.DEADLINE: 504,
    Failure.NOT_READY: 503,
    Failure.SHUTTING_DOWN: 503,
    Failure.ENGINE_FAILURE: 500,
    Failure.ENGINE_UNAVAILABLE: 503,
    Failure.INTERNAL: 500,
}


def problem_response(request: Request, told: Problem) -> JSONResponse:
    """A failure as this door writes it: its status, body, and Retry-After when it has one."""
    headers = None if told.retry_after_s is None else {"Retry-After": str(told.retry_after_s)}
    if told.kind is Failure.UNAUTHENTICATED:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return error_response(
        request, HTTP_STATUS[told.kind], told.code, told.message, told.param, told.allowed, headers
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceFailure)
    async def _failure(request: Request, exc: ServiceFailure) -> JSONResponse:
        return problem_response(request, problem(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        described = [describe_validation_error(err) for err in exc.errors()]
        message = " ".join(text for text, _ in described) or "The request is not valid."
        param = next((p for _, p in described if p), None)
        return error_response(request, 422, "invalid_request", message, param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in message:
            message = (
                "The request body could not be parsed: send UTF-8 JSON to /api/tts and "
                "multipart form data to /api/tts/clone."
            )
        code = "invalid_api_key" if exc.status_code == 401 else f"http_{exc.status_code}"
        return error_response(request, exc.status_code, code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(request, problem(exc))
