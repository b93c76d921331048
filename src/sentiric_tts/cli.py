"""Command line: `serve` runs the service, `say` speaks one text to a file, `voices` lists voices,
`library copy` moves an embedded voice library into PostgreSQL, `cluster` deploys the service onto
a Ray Serve cluster."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from types import FrameType

from sentiric_tts.engines.base import GenerationParams
from sentiric_tts.failures import RequestError
from sentiric_tts.logging_setup import configure_logging
from sentiric_tts.settings import Settings, get_settings
from sentiric_tts.synthesis.request import SynthesisRequest


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from sentiric_tts.app import create_app
    from sentiric_tts.http_server import uvicorn_config
    from sentiric_tts.runtime import CUT_SETTLE_S

    if args.host:
        # The bind address is one of the host names the service answers to (doors/http/origin_guard.py).
        server = settings.server.model_copy(update={"host": args.host})
        settings = settings.model_copy(update={"server": server})
    app = create_app(settings)

    class _DrainingServer(uvicorn.Server):
        """SIGTERM/SIGINT: readiness turns 503 and no new synthesis is admitted, while the
        listener stays open (health probes, responses in flight). Once in-flight work has drained,
        or TTS_SHUTDOWN_GRACE_SECONDS have passed, what is left is cut so that each door reports
        an error, then uvicorn stops and the process exits 0. A second signal ends the drain."""

        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            self._signals = 0
            self._shutdown: asyncio.Task[None] | None = None
            self._drain: asyncio.Task[None] | None = None

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # A signal handler: set flags only, `on_tick` acts on them. uvicorn's own handler
            # records the signal to raise it again on exit (status 143 after a clean drain).
            self._signals += 1
            if not self.started:
                self.should_exit = True  # still starting: nothing to drain

        async def on_tick(self, counter: int) -> bool:
            if self._signals and self._shutdown is None:
                self._shutdown = asyncio.create_task(self._drain_then_exit())
            if self._signals > 1 and self._drain is not None:
                self._drain.cancel()
            return await super().on_tick(counter)

        async def _drain_then_exit(self) -> None:
            deadline = time.monotonic() + settings.server.shutdown_grace_seconds
            runtime = app.state.runtime
            if runtime is not None:
                runtime.begin_shutdown()
                self._drain = asyncio.ensure_future(runtime.drain(settings.server.shutdown_grace_seconds))
                await asyncio.wait({self._drain})  # done, or cancelled by a second signal
                runtime.cut()
            # Let the doors tell their clients (error events, statuses) before uvicorn closes
            # the connections; then uvicorn waits only for what is left of the grace.
            settle_until = time.monotonic() + CUT_SETTLE_S
            while self.server_state.tasks and time.monotonic() < settle_until:
                await asyncio.sleep(0.05)
            self.config.timeout_graceful_shutdown = max(1, round(deadline - time.monotonic()))
            self.should_exit = True

    config = uvicorn_config(
        app, settings, host=args.host or settings.server.host, port=args.port or settings.server.port
    )
    server = _DrainingServer(config)
    server.run()
    # uvicorn.run() exits 3 when start-up failed (the lifespan raised); serving directly, so do we.
    return 0 if server.started else 3


def _say(settings: Settings, args: argparse.Namespace) -> int:
    from sentiric_tts.runtime import Runtime

    runtime = Runtime.build(settings)
    runtime.start()
    try:
        request = SynthesisRequest(
            text=args.text,
            language=args.language,
            voice=args.voice,
            params=GenerationParams(speed=args.speed),
            output_format=args.format,
            sample_rate=args.sample_rate,
        )
        try:
            plan, audio = asyncio.run(runtime.pipeline.synthesize(request))
        except RequestError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 2
        args.output.write_bytes(audio)
        print(f"wrote {args.output} ({plan.output_format}, {plan.sample_rate} Hz, voice {plan.voice_id})")
        return 0
    finally:
        runtime.stop()


def _voices(settings: Settings, _: argparse.Namespace) -> int:
    from sentiric_tts.engines.selection import load_engine

    engine = load_engine(settings)
    for voice in engine.voices():
        print(f"{voice.id}\t{voice.kind}\t{','.join(voice.languages)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sentiric_tts", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="bind address (default: TTS_HOST)")
    serve.add_argument("--port", type=int, help="HTTP port (default: TTS_PORT)")
    serve.set_defaults(handler=_serve)

    say = commands.add_parser("say", help="speak a text into an audio file")
    say.add_argument("text")
    say.add_argument("-o", "--output", type=Path, default=Path("speech.wav"))
    say.add_argument("--voice")
    say.add_argument("--language")
    say.add_argument("--format", default="wav")
    say.add_argument("--sample-rate", type=int)
    say.add_argument("--speed", type=float, default=1.0)
    say.set_defaults(handler=_say)

    voices = commands.add_parser("voices", help="list the engine's voices")
    voices.set_defaults(handler=_voices)

    from sentiric_tts.voices.library_command import add_parser as add_library  # psycopg when run only

    add_library(commands)

    from sentiric_tts.cluster.command import add_parser  # imports no Ray: the extra is optional

    add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    configure_logging(settings.server.log_level, settings.server.log_json)
    return int(args.handler(settings, args))
