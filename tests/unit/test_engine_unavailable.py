"""A lost engine (a cluster's engine replica died mid-request) reads as "send it again" on every
door, distinct from an engine that failed: HTTP 503 with Retry-After, gRPC UNAVAILABLE, and the
`engine_unavailable` code; its cause is logged, never sent."""

from __future__ import annotations

import grpc

from sentiric_tts.doors.grpc.status import refusal_for
from sentiric_tts.doors.http.errors import HTTP_STATUS
from sentiric_tts.failures import (
    ENGINE_UNAVAILABLE_MESSAGE,
    EngineUnavailable,
    Failure,
    SynthesisFailed,
    problem,
)


def test_a_lost_engine_is_told_as_retryable_with_a_fixed_message() -> None:
    told = problem(EngineUnavailable())
    assert (told.kind, told.code, told.message) == (
        Failure.ENGINE_UNAVAILABLE,
        "engine_unavailable",
        ENGINE_UNAVAILABLE_MESSAGE,
    )
    assert told.retry_after_s == 1
    assert HTTP_STATUS[told.kind] == 503


def test_grpc_answers_unavailable_with_a_retry_after_trailer() -> None:
    refusal = refusal_for(EngineUnavailable())
    assert refusal.code is grpc.StatusCode.UNAVAILABLE
    assert refusal.message == ENGINE_UNAVAILABLE_MESSAGE
    assert ("retry-after", "1") in refusal.trailers
    # An engine that failed is not worth retrying: INTERNAL, as before.
    assert refusal_for(SynthesisFailed("onnx error")).code is grpc.StatusCode.INTERNAL
