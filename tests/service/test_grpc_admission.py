"""gRPC admission: full queue, rate limits, API keys, our own deadline, shutdown (UNAVAILABLE)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sentiric_tts.doors.grpc.contract import SERVICE_NAME, pb
from tests.service.test_grpc import LONG, TELEPHONY, VERY_LONG
from tests.support.grpc_client import grpc_service, joined_audio, refusal, run, stream, stub, unary
from tests.support.server import free_port, serve_in_subprocess


def test_a_full_queue_is_resource_exhausted_with_retry_after(tmp_path: Path) -> None:
    with grpc_service(tmp_path, max_queued_requests=1, stream_buffer_chunks=1) as service:

        async def hold_the_queue() -> grpc.aio.AioRpcError:
            async with grpc.aio.insecure_channel(service.target) as channel:
                long_call = stub(channel).CoquiSynthesizeStream(
                    pb.CoquiSynthesizeStreamRequest(text=VERY_LONG, **TELEPHONY)
                )
                assert (await long_call.read()).audio_chunk  # admitted and running
                try:
                    await stub(channel).CoquiSynthesize(pb.CoquiSynthesizeRequest(text="One more."))
                except grpc.aio.AioRpcError as error:
                    return error
                finally:
                    long_call.cancel()
                raise AssertionError("the second call was admitted")

        error = run(hold_the_queue)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "queue is full" in error.details()
        assert dict(error.trailing_metadata() or ())["retry-after"] == "2"
        assert service.wait_until_idle() == 0
        assert run(lambda: unary(service.target, text="Room again."))


def test_our_request_timeout_is_deadline_exceeded(tmp_path: Path) -> None:
    with grpc_service(tmp_path, request_timeout_seconds=0.05) as service:
        for call in (unary, stream):
            error = refusal(lambda call=call: call(service.target, text=LONG, **TELEPHONY))  # type: ignore[misc]
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "deadline" in error.details()
        assert service.wait_until_idle() == 0


def test_api_keys_and_rate_limits(tmp_path: Path) -> None:
    with grpc_service(
        tmp_path, api_keys="key-one, key-two", rate_limit_per_minute=6, rate_limit_burst=2
    ) as service:
        target = service.target
        missing = refusal(lambda: unary(target, text="Hi."))
        assert missing.code() == grpc.StatusCode.UNAUTHENTICATED and "API key" in missing.details()
        wrong = refusal(lambda: stream(target, metadata=(("authorization", "Bearer nope"),), text="Hi."))
        assert wrong.code() == grpc.StatusCode.UNAUTHENTICATED
        assert run(lambda: unary(target, metadata=(("authorization", "Bearer key-one"),), text="Hi."))
        assert run(lambda: unary(target, metadata=(("x-api-key", "key-two"),), text="Hi."))
        assert run(lambda: unary(target, metadata=(("x-api-key", "key-one"),), text="Hi."))
        limited = refusal(lambda: unary(target, metadata=(("x-api-key", "key-one"),), text="Hi."))
        assert limited.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "Rate limit" in limited.details()
        assert int(dict(limited.trailing_metadata() or ())["retry-after"]) >= 1

        async def health() -> int:  # probes need no key
            async with grpc.aio.insecure_channel(target) as channel:
                request = health_pb2.HealthCheckRequest(service=SERVICE_NAME)
                return int((await health_pb2_grpc.HealthStub(channel).Check(request)).status)

        assert run(health) == health_pb2.HealthCheckResponse.SERVING


def test_sigterm_turns_health_not_serving_refuses_new_calls_and_drains(tmp_path: Path) -> None:
    grpc_port = free_port()
    process, base = serve_in_subprocess(
        tmp_path,
        TTS_GRPC_HOST="127.0.0.1",
        TTS_GRPC_PORT=str(grpc_port),  # gRPC is on by default
        TTS_STREAM_BUFFER_CHUNKS="1",
    )
    target = f"127.0.0.1:{grpc_port}"
    try:

        async def through_shutdown() -> tuple[int, grpc.aio.AioRpcError, bytes]:
            async with grpc.aio.insecure_channel(target) as channel:
                in_flight = stub(channel).CoquiSynthesizeStream(
                    pb.CoquiSynthesizeStreamRequest(text=LONG, **TELEPHONY)
                )
                messages = [await in_flight.read()]
                # An open HTTP stream holds uvicorn's drain, so the process stays up meanwhile.
                with (
                    httpx.Client(base_url=base, timeout=60) as http,
                    http.stream("POST", "/api/tts", json={"text": LONG, "stream": True}) as held,
                ):
                    reader = held.iter_bytes()
                    next(reader)
                    process.send_signal(signal.SIGTERM)
                    health = health_pb2_grpc.HealthStub(channel)
                    status = health_pb2.HealthCheckResponse.SERVING
                    for _ in range(200):  # bounded poll until the signal is handled
                        request = health_pb2.HealthCheckRequest(service=SERVICE_NAME)
                        status = (await health.Check(request)).status
                        if status != health_pb2.HealthCheckResponse.SERVING:
                            break
                        threading.Event().wait(0.05)
                    try:
                        await stub(channel).CoquiSynthesize(pb.CoquiSynthesizeRequest(text="Too late."))
                        raise AssertionError("a new call was admitted during shutdown")
                    except grpc.aio.AioRpcError as error:
                        refused = error
                    for _ in reader:
                        pass
                while (message := await in_flight.read()) is not grpc.aio.EOF:
                    messages.append(message)
                return status, refused, joined_audio(messages)

        status, refused, audio = run(through_shutdown)
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert refused.code() == grpc.StatusCode.UNAVAILABLE and "shutting down" in refused.details()
        assert len(audio) / 2 / 16000 > 30  # the call in flight got all of its audio
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate()[0]
    assert "without TLS" in output and "gRPC server stopped" in output
