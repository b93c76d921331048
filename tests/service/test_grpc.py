"""The gRPC door on the Piper engine: both RPCs, formats, SSML, errors, cancellation, health."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sentiric_tts.doors.grpc.contract import SERVICE_NAME, pb
from tests.support.audio import parse_wav, pcm16, to_16k, to_float, word_error_rate
from tests.support.broken_voice import service_with_broken_voice
from tests.support.grpc_client import (
    Service,
    joined_audio,
    refusal,
    run,
    stream,
    stub,
    unary,
)

TELEPHONY = {"output_format": "pcm", "sample_rate": 16000}
LONG = " ".join(
    f"This is sentence number {n} of a long answer that keeps the engine busy for a while."
    for n in ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
)
VERY_LONG = " ".join([LONG] * 6)[:4900]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with service_with_broken_voice(tmp_path_factory.mktemp("grpc-data")) as live:
        yield live


def test_unary_default_is_the_whole_wav_file_as_over_http(service: Service) -> None:
    text = "Good morning. Your parcel arrives on Tuesday."
    audio = run(lambda: unary(service.target, text=text, language_code="en"))
    rate, channels, samples = parse_wav(audio)
    assert (rate, channels) == (22050, 1) and len(samples) > 22050
    over_http = httpx.post(f"{service.http}/api/tts", json={"text": text, "language": "en"}, timeout=60)
    # Piper samples noise, so not the same bytes: the same kind of file, of about the same length.
    assert audio[8:36] == over_http.content[8:36]  # WAVE, fmt chunk: format, channels, rate, bits
    assert abs(len(audio) - len(over_http.content)) < 0.1 * len(audio)


def test_streamed_telephony_pcm_round_trips(service: Service, transcribe) -> None:  # type: ignore[no-untyped-def]
    text = "Thank you for calling the city library. Our opening hours are nine to five."
    messages = run(lambda: stream(service.target, text=text, language_code="en", **TELEPHONY))
    assert len(messages) > 2  # audio came in pieces, then the final message
    audio = joined_audio(messages)
    heard = transcribe(to_16k(to_float(pcm16(audio)), 16000))
    assert word_error_rate(text, heard) <= 0.15, heard
    whole = run(lambda: unary(service.target, text=text, **TELEPHONY))
    assert abs(len(whole) - len(audio)) < 0.1 * len(audio)  # raw PCM both ways, no header


def test_streamed_wav_at_a_chosen_rate(service: Service) -> None:
    messages = run(lambda: stream(service.target, text="A streamed wave file.", sample_rate=8000))
    rate, channels, samples = parse_wav(joined_audio(messages))
    assert (rate, channels) == (8000, 1) and len(samples) > 4000


def test_tuning_fields_zero_means_default_and_are_accepted(service: Service) -> None:
    audio = run(
        lambda: unary(
            service.target,
            text="Tuned.",
            temperature=0.7,
            top_p=0.9,
            top_k=50.0,
            repetition_penalty=2.0,
            speed=1.0,
            voice="en_US-joe-medium",
            **TELEPHONY,
        )
    )
    slow = run(lambda: unary(service.target, text="Tuned.", speed=0.5, **TELEPHONY))
    assert len(pcm16(slow)) > 1.5 * len(pcm16(audio))  # speed is honoured


def test_ssml_is_detected_and_can_be_forced(service: Service) -> None:
    plain = run(lambda: unary(service.target, text="One. Two.", **TELEPHONY))
    paused = run(
        lambda: unary(service.target, text='<speak>One. <break time="2s"/> Two.</speak>', **TELEPHONY)
    )
    assert len(pcm16(paused)) - len(pcm16(plain)) > 1.5 * 16000  # the break is there
    broken = refusal(lambda: unary(service.target, text="<speak>One", ssml=True))
    assert broken.code() == grpc.StatusCode.INVALID_ARGUMENT and "Invalid SSML" in broken.details()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"text": ""}, "text is empty"),
        ({"text": "Hi.", "language_code": "xx"}, "Language 'xx' is not available"),
        ({"text": "Hi.", "output_format": "ogg_vorbis"}, "Unsupported output format 'ogg_vorbis'"),
        ({"text": "Hi.", "sample_rate": 12345}, "Unsupported sample rate 12345"),
        ({"text": "Hi.", "speed": -1.0}, "speed must be in [0.25, 4]"),
        ({"text": "Hi.", "top_p": 2.0}, "top_p must be in (0, 1]"),
        ({"text": "Hi.", "temperature": float("nan")}, "temperature must be in (0, 2]"),
        ({"text": "Hi.", "voice": "nobody"}, "Unknown voice 'nobody'"),
    ],
)
def test_bad_requests_are_invalid_argument_with_what_to_fix(
    service: Service, fields: dict[str, object], expected: str
) -> None:
    for call in (unary, stream):
        error = refusal(lambda call=call: call(service.target, **fields))  # type: ignore[misc]
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
        assert expected in error.details(), error.details()


def test_cloning_on_piper_is_a_failed_precondition(service: Service) -> None:
    error = refusal(lambda: unary(service.target, text="Hi.", speaker_wav=b"RIFF...."))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "needs the XTTS engine" in error.details()


def test_an_engine_failure_mid_stream_ends_with_internal(service: Service) -> None:
    document = "<speak>This first sentence is fine. <voice name='en_US-broken-medium'>This one fails.</voice></speak>"
    received: list[pb.CoquiSynthesizeStreamResponse] = []

    async def read() -> None:
        async with grpc.aio.insecure_channel(service.target) as channel:
            async for message in stub(channel).CoquiSynthesizeStream(
                pb.CoquiSynthesizeStreamRequest(text=document, **TELEPHONY), timeout=60
            ):
                received.append(message)

    error = refusal(read)
    assert error.code() == grpc.StatusCode.INTERNAL and "engine failed" in error.details()
    assert "Traceback" not in error.details()
    assert received and not any(message.is_final for message in received)  # audio, then no clean end
    whole = refusal(lambda: unary(service.target, text=document))
    assert whole.code() == grpc.StatusCode.INTERNAL


def test_a_cancelled_stream_frees_the_engine(service: Service) -> None:
    cancelled_before = service.metric("tts_cancellations_total")

    async def start_then_cancel() -> int:
        async with grpc.aio.insecure_channel(service.target) as channel:
            call = stub(channel).CoquiSynthesizeStream(
                pb.CoquiSynthesizeStreamRequest(text=VERY_LONG, **TELEPHONY)
            )
            first = await call.read()
            call.cancel()
            return len(first.audio_chunk)

    assert run(start_then_cancel) > 0
    assert service.wait_until_idle() == 0  # the job left the scheduler long before its minutes of audio
    for _ in range(200):  # bounded poll on service state, not a timing assertion
        if service.metric("tts_grpc_requests_total", code="CANCELLED"):
            break
        threading_wait(0.05)
    assert service.metric("tts_cancellations_total") == cancelled_before + 1
    assert service.metric("tts_grpc_requests_total", rpc="CoquiSynthesizeStream", code="CANCELLED") == 1


def test_the_call_deadline_stops_the_work(service: Service) -> None:
    async def impatient() -> None:
        async with grpc.aio.insecure_channel(service.target) as channel:
            await stub(channel).CoquiSynthesize(pb.CoquiSynthesizeRequest(text=VERY_LONG), timeout=0.5)

    error = refusal(impatient)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert service.wait_until_idle() == 0


def test_request_ids_log_lines_and_metrics(service: Service, caplog: pytest.LogCaptureFixture) -> None:
    async def traced() -> tuple[bytes, str]:
        async with grpc.aio.insecure_channel(service.target) as channel:
            call = stub(channel).CoquiSynthesize(
                pb.CoquiSynthesizeRequest(text="Traced call.", **TELEPHONY),
                metadata=(("x-trace-id", "trace-grpc-1"),),
            )
            response = await call
            echoed = dict(await call.initial_metadata())["x-request-id"]
            return response.audio_content, str(echoed)

    with caplog.at_level(logging.INFO, logger="sentiric_tts.access"):
        audio, echoed = run(traced)
    assert audio and echoed == "trace-grpc-1"
    lines = [r.getMessage() for r in caplog.records if "request_id=trace-grpc-1" in r.getMessage()]
    assert lines, [r.getMessage() for r in caplog.records]
    for field in (
        "door=grpc",
        "rpc=CoquiSynthesize",
        "status=OK",
        "voice=en_US-joe-medium",
        "language=en",
        "chars=12",
        "format=pcm",
        "rate=16000",
        "audio_s=",
        "ttfa_ms=",
        "outcome=ok",
    ):
        assert field in lines[0], lines[0]
    assert service.metric("tts_grpc_requests_total", rpc="CoquiSynthesize", code="OK") >= 1
    assert service.metric("tts_audio_seconds_total", door="grpc") > 0


def test_health_and_reflection(service: Service) -> None:
    async def probe() -> tuple[list[int], list[str], bool]:
        async with grpc.aio.insecure_channel(service.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            statuses = [
                (await health.Check(health_pb2.HealthCheckRequest(service=name))).status
                for name in ("", SERVICE_NAME)
            ]
            reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
            asks = [
                reflection_pb2.ServerReflectionRequest(list_services=""),
                reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME),
            ]
            answers = [answer async for answer in reflect.ServerReflectionInfo(iter(asks))]
            names = [s.name for s in answers[0].list_services_response.service]
            described = bool(answers[1].file_descriptor_response.file_descriptor_proto)
            return statuses, names, described

    statuses, names, described = run(probe)
    assert statuses == [health_pb2.HealthCheckResponse.SERVING] * 2
    assert SERVICE_NAME in names and "grpc.health.v1.Health" in names
    assert described


def threading_wait(seconds: float) -> None:
    import threading

    threading.Event().wait(seconds)
