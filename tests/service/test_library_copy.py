"""`sentiric-tts library copy`: an embedded voice library, made through the library's own service,
moved into a real PostgreSQL database (tests/support/postgres.py) by the real command line, run
as a user runs it (a subprocess, settings from the environment)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from sentiric_tts.callers import owner_hash
from sentiric_tts.synthesis.scheduler import EngineScheduler
from sentiric_tts.voices.access import OPEN_ACCESS, LibraryAccess
from sentiric_tts.voices.cloning import model_tag
from sentiric_tts.voices.latent_cache import LatentCache
from sentiric_tts.voices.library_backend import open_library
from sentiric_tts.voices.library_records import Latents, LibraryVoice, NewSample
from sentiric_tts.voices.library_service import LibraryService
from sentiric_tts.voices.library_store import LibraryStore
from sentiric_tts.voices.postgres_db import Database
from sentiric_tts.voices.postgres_latents import PostgresShelf
from sentiric_tts.voices.postgres_store import PostgresLibraryStore
from tests.service.test_library_postgres import LIMITS, CountingCloner, tone_wav
from tests.support.server import isolated_settings, running_server

SRC = Path(__file__).resolve().parents[2] / "src"
OWNER = owner_hash("a-team-key")


@dataclass(frozen=True)
class Source:
    data_dir: Path
    voices: tuple[LibraryVoice, ...]
    clips: dict[str, list[bytes]]
    latents: dict[str, bytes]
    model: str

    @property
    def library(self) -> Path:
        return self.data_dir / "voices"

    @property
    def cache(self) -> Path:
        return self.data_dir / "cache" / "latents"


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m sentiric_tts library copy ...` with the settings of a server on `data_dir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTS_")}
    env.update({"PYTHONPATH": str(SRC), "TTS_DATA_DIR": str(data_dir), "TTS_LOG_LEVEL": "WARNING"})
    return subprocess.run(
        [sys.executable, "-m", "sentiric_tts", "library", "copy", *args],
        cwd=data_dir.parent,  # no developer's .env
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def lines(output: str, verb: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(verb)]


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def source(tmp_path: Path) -> Iterator[Source]:
    """A server's embedded library with three voices (one owned by an API key), their latents
    and latent cache entries, made through LibraryService on a cloning engine."""
    settings = isolated_settings(tmp_path / "data")
    store = LibraryStore(settings.paths.voice_library_dir, settings.voices.library_max_voices)
    engine = CountingCloner()
    scheduler = EngineScheduler([engine], max_jobs=2, buffer_chunks=2, retry_after_s=1)
    scheduler.start()
    service = LibraryService(
        store,
        engine,
        scheduler,
        LatentCache(settings.paths.latents_dir, capacity=8),
        LIMITS,
        memory_entries=8,
    )

    async def make() -> None:
        await service.create("Ada", "en", "calm reader", [("ada.wav", tone_wav(220.0))], OPEN_ACCESS)
        team = LibraryAccess(owner=OWNER)
        await service.create(
            "Grace", "de", "", [("g1.wav", tone_wav(330.0)), ("g2.wav", tone_wav(440.0))], team
        )
        await service.create("Night", None, "late", [("n.wav", tone_wav(550.0))], OPEN_ACCESS)

    try:
        asyncio.run(make())
        voices = store.list()
        model = model_tag(engine)
        clips = {v.id: [data for _, data in store.sample_files(v.id)] for v in voices}
        latents = {v.id: store.latents(v.id, model) for v in voices}
    finally:
        scheduler.stop()
        store.close()
    assert len(voices) == 3 and all(latents.values())
    yield Source(settings.paths.data_dir, voices, clips, {k: v for k, v in latents.items() if v}, model)


def open_target(url: str) -> PostgresLibraryStore:
    db = Database(url)
    db.open()
    return PostgresLibraryStore(db, max_voices=100)


def generation(url: str) -> int:
    with psycopg.connect(url) as db:
        row = db.execute("SELECT generation FROM tts_library_state").fetchone()
    assert row is not None
    return int(row[0])


def test_every_voice_arrives_whole_and_a_second_run_copies_nothing(source: Source, postgres_url: str) -> None:
    before = snapshot(source.data_dir)
    first = cli(source.data_dir, "--to", postgres_url)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "migration(s) 1, 2 applied" in first.stdout
    assert len(lines(first.stdout, "copied")) == 3
    assert "Voices: 3 copied, 0 replaced, 0 skipped (already there), 0 conflict(s), 0 failed." in first.stdout
    cache_files = sorted(source.cache.glob("*.latents"))
    assert cache_files and f"Latent cache: {len(cache_files)} entr" in first.stdout

    target = open_target(postgres_url)
    try:
        # Ids, owner, names, language, description, times, samples: the voices as they were.
        assert target.list() == source.voices
        for voice in source.voices:
            assert [data for _, data in target.sample_files(voice.id)] == source.clips[voice.id]
            assert target.latents(voice.id, source.model) == source.latents[voice.id]
        db = Database(postgres_url)
        db.open()
        shelf = PostgresShelf(db)
        for path in cache_files:
            assert shelf.read(path.name.removesuffix(".latents")) == path.read_bytes()
        db.close()
    finally:
        target.close()

    written = generation(postgres_url)
    again = cli(source.data_dir, "--to", postgres_url)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "schema current" in again.stdout
    assert len(lines(again.stdout, "skipped")) == 3 and not lines(again.stdout, "copied")
    assert "Voices: 0 copied, 0 replaced, 3 skipped (already there), 0 conflict(s), 0 failed." in again.stdout
    assert f"0 entries copied, {len(cache_files)} already there" in again.stdout
    assert generation(postgres_url) == written, "the second run wrote nothing"
    assert snapshot(source.data_dir) == before, "the source library is only read"


def test_a_conflicting_voice_is_left_alone_unless_replace_is_asked(source: Source, postgres_url: str) -> None:
    ada = next(v for v in source.voices if v.name == "Ada")
    target = open_target(postgres_url)
    try:
        theirs = target.create(
            "ada", None, "made there", [NewSample("x.wav", b"other clip", 1.0)], Latents("m", "d", b"l")
        )
        result = cli(source.data_dir, "--to", postgres_url)
        assert result.returncode == 1, "a voice not moved is not success"
        (conflict,) = lines(result.stdout, "conflict")
        assert ada.id in conflict and theirs.id in conflict and "--replace" in conflict
        assert len(lines(result.stdout, "copied")) == 2
        assert target.get(theirs.id) == theirs and target.sample_files(theirs.id) == [
            ("x.wav", b"other clip")
        ]
        assert ada.id not in {v.id for v in target.list()}

        replaced = cli(source.data_dir, "--to", postgres_url, "--replace")
        assert replaced.returncode == 0, replaced.stdout + replaced.stderr
        assert len(lines(replaced.stdout, "replaced")) == 1 and len(lines(replaced.stdout, "skipped")) == 2
        assert theirs.id not in {v.id for v in target.list()}
        assert target.get(ada.id) == ada
        assert [data for _, data in target.sample_files(ada.id)] == source.clips[ada.id]
        assert target.latents(ada.id, source.model) == source.latents[ada.id]
    finally:
        target.close()


def test_a_dry_run_says_what_it_would_do_and_writes_nothing(source: Source, postgres_url: str) -> None:
    result = cli(source.data_dir, "--to", postgres_url, "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "migration(s) 1, 2 would be applied" in result.stdout
    assert len(lines(result.stdout, "would be copied")) == 3
    with psycopg.connect(postgres_url) as db:
        tables = db.execute("SELECT COUNT(*) FROM pg_tables WHERE tablename LIKE 'tts_%'").fetchone()
    assert tables == (0,), "not even the schema"

    assert cli(source.data_dir, "--to", postgres_url).returncode == 0
    written = generation(postgres_url)
    again = cli(source.data_dir, "--to", postgres_url, "--dry-run", "--replace")
    assert again.returncode == 0 and len(lines(again.stdout, "skipped")) == 3
    assert generation(postgres_url) == written


def test_failures_are_one_line_without_the_password(source: Source, tmp_path: Path) -> None:
    secret = "s3cr3t-pw"
    for url, told in (
        (f"postgresql://tts:{secret}@127.0.0.1:1/voices", "postgresql://127.0.0.1:1/voices cannot be used"),
        (f"postgresql://tts:{secret}@[broken/voices", "not a URL PostgreSQL can read"),
        (f"mysql://tts:{secret}@host/voices", "not a PostgreSQL URL"),
    ):
        result = cli(source.data_dir, "--to", url)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
        assert told in result.stderr and secret not in result.stderr

    missing = cli(
        source.data_dir, "--to", "postgresql://tts@127.0.0.1:1/x", "--from", str(tmp_path / "nowhere")
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr and missing.stderr.count("\n") == 1
    (tmp_path / "empty").mkdir()
    empty = cli(source.data_dir, "--to", "postgresql://tts@127.0.0.1:1/x", "--from", str(tmp_path / "empty"))
    assert empty.returncode == 2 and "is not a voice library" in empty.stderr


def test_a_damaged_voice_fails_alone_and_the_others_are_copied(source: Source, postgres_url: str) -> None:
    night = next(v for v in source.voices if v.name == "Night")
    (source.library / night.id / "voice.json").write_text("{ damaged")
    result = cli(source.data_dir, "--to", postgres_url, "--from", str(source.library))
    assert result.returncode == 1
    (failed,) = lines(result.stdout, "failed")
    assert night.id in failed and "damaged" in failed
    assert len(lines(result.stdout, "copied")) == 2
    assert "Latent cache" not in result.stdout, "another machine's library: its cache only when named"


def test_a_server_on_the_database_lists_plays_and_speaks_the_copied_voices(
    source: Source, postgres_url: str, tmp_path: Path
) -> None:
    assert cli(source.data_dir, "--to", postgres_url).returncode == 0
    settings = isolated_settings(tmp_path / "server", library_url=postgres_url)
    # A server (Piper: lists library voices, cannot clone) started on the database.
    with running_server(settings) as url, httpx.Client(base_url=url, timeout=60) as http:
        listed = {v["id"]: v for v in http.get("/api/voices").json()["voices"] if v["kind"] == "library"}
        assert set(listed) == {v.id for v in source.voices}, "an open server shows every voice"
        for voice in source.voices:
            assert (listed[voice.id]["name"], listed[voice.id]["description"]) == (
                voice.name,
                voice.description,
            )
            played = http.get(f"/api/voices/{voice.id}/sample")
            assert played.status_code == 200 and played.content.startswith(b"RIFF")

    # A cloning replica on the database speaks them from the copied latents: nothing recomputed.
    backend = open_library(settings)
    engine = CountingCloner()
    scheduler = EngineScheduler([engine], max_jobs=2, buffer_chunks=2, retry_after_s=1)
    scheduler.start()
    try:
        service = LibraryService(
            backend.store, engine, scheduler, LatentCache(backend.latent_shelf, 8), LIMITS, memory_entries=8
        )
        for voice in source.voices:
            conditioning = asyncio.run(service.conditioning(voice.id))
            assert conditioning == engine.load_conditioning(source.latents[voice.id])
        assert engine.clones == 0 and service.recomputed == 0
    finally:
        scheduler.stop()
        backend.store.close()
