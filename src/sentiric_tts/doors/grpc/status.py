"""Failures on gRPC: one status code per kind of failure (`GRPC_STATUS`), with the message every
door gives and a retry-after trailer where the failure has one."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from sentiric_tts.failures import Failure, problem

GRPC_STATUS: dict[Failure, grpc.StatusCode] = {
    Failure.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    Failure.NOT_FOUND: grpc.StatusCode.INVALID_ARGUMENT,
    # The request is fine; the service is not in the state it needs (cloning on Piper).
    Failure.CONFLICT: grpc.StatusCode.FAILED_PRECONDITION,
    Failure.UNSUPPORTED: grpc.StatusCode.UNIMPLEMENTED,
    Failure.TOO_LARGE: grpc.StatusCode.INVALID_ARGUMENT,
    Failure.STORAGE_FULL: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Failure.BUSY: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Failure.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Failure.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Failure.DEADLINE: grpc.StatusCode.DEADLINE_EXCEEDED,
    Failure.NOT_READY: grpc.StatusCode.UNAVAILABLE,
    Failure.SHUTTING_DOWN: grpc.StatusCode.UNAVAILABLE,  # refused, or cut at the end of the grace
    Failure.ENGINE_FAILURE: grpc.StatusCode.INTERNAL,
    Failure.ENGINE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,  # a retry reaches a live engine
    Failure.INTERNAL: grpc.StatusCode.INTERNAL,
}


@dataclass(frozen=True)
class Refusal:
    code: grpc.StatusCode
    message: str
    trailers: tuple[tuple[str, str], ...] = ()


def refusal_for(exc: BaseException) -> Refusal:
    """The status a failed call ends with (engine and unexpected errors: logged, not told)."""
    told = problem(exc)
    retry = () if told.retry_after_s is None else (("retry-after", str(told.retry_after_s)),)
    # Busy and rate-limited calls say when to retry; a shutdown's UNAVAILABLE tells clients to
    # go elsewhere, as gRPC's retry policies read it.
    if told.kind is Failure.SHUTTING_DOWN:
        retry = ()
    return Refusal(GRPC_STATUS[told.kind], told.message, retry)
