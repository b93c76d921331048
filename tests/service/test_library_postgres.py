"""The voice library shared through PostgreSQL (TTS_LIBRARY_URL): replicas that see one library
and one latent cache, migrations, and a database that goes away.

Store-level behaviour (names, limits, samples, races) runs on both stores in
test_voice_library_store.py; this file covers what only a shared database has.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import pytest

from sentiric_tts.audio.reference import ReferenceLimits, load_references
from sentiric_tts.failures import Failure, problem
from sentiric_tts.synthesis.scheduler import EngineScheduler
from sentiric_tts.voices.access import OPEN_ACCESS
from sentiric_tts.voices.cloning import conditioning_from
from sentiric_tts.voices.latent_cache import LatentCache
from sentiric_tts.voices.library_backend import LibraryBackend, open_library
from sentiric_tts.voices.library_records import Latents, NewSample
from sentiric_tts.voices.library_rules import LibraryUnavailable
from sentiric_tts.voices.library_service import LibraryService
from sentiric_tts.voices.postgres_db import Database
from sentiric_tts.voices.postgres_migrations import MIGRATIONS, migrate
from sentiric_tts.voices.postgres_store import PostgresLibraryStore
from tests.support.fake_engine import FakeEngine
from tests.support.server import isolated_settings

LIMITS = ReferenceLimits(max_files=5, max_file_bytes=1 << 20, max_seconds=30.0, min_speech_seconds=0.0)


class CountingCloner(FakeEngine):
    """The fake engine, able to clone: conditioning is the clips' mean, and each computation is
    counted, so a test sees whether a replica computed or found it."""

    supports_cloning = True

    def __init__(self) -> None:
        super().__init__()
        self.clones = 0

    def clone_conditioning(self, clips: Sequence[np.ndarray], sample_rate: int) -> object:
        self.clones += 1
        return float(np.mean(np.concatenate(clips)))

    def conditioning_tag(self) -> str:
        return "counting-cloner:1"

    def dump_conditioning(self, conditioning: object) -> bytes:
        return repr(conditioning).encode()

    def load_conditioning(self, data: bytes) -> object:
        return float(data.decode())


def tone_wav(hz: float, seconds: float = 1.5, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * hz * t) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return out.getvalue()


@dataclass
class Replica:
    """One server's library: its own engine, scheduler, latent cache and database connections."""

    backend: LibraryBackend
    engine: CountingCloner
    scheduler: EngineScheduler
    cache: LatentCache
    service: LibraryService


@pytest.fixture()
def replicas(postgres_url: str, tmp_path: Path) -> Iterator[list[Replica]]:
    made: list[Replica] = []
    for index in range(2):
        # Through the factory Runtime.build uses, from settings as an operator writes them.
        settings = isolated_settings(tmp_path / f"replica-{index}", library_url=postgres_url)
        backend = open_library(settings)
        engine = CountingCloner()
        scheduler = EngineScheduler([engine], max_jobs=4, buffer_chunks=2, retry_after_s=1)
        scheduler.start()
        cache = LatentCache(backend.latent_shelf, capacity=8)
        service = LibraryService(backend.store, engine, scheduler, cache, LIMITS, memory_entries=8)
        made.append(Replica(backend, engine, scheduler, cache, service))
    yield made
    for replica in made:
        replica.scheduler.stop()
        replica.backend.store.close()


def test_a_voice_cloned_on_one_replica_speaks_on_the_other_computed_once(
    replicas: list[Replica], tmp_path: Path
) -> None:
    one, two = replicas
    assert isinstance(one.backend.store, PostgresLibraryStore)
    assert not any(tmp_path.rglob("library.db")), "no embedded library beside the database"
    clip = tone_wav(220.0)

    async def scenario() -> None:
        voice = await one.service.create("Shared", "en", "cloned on one", [("a.wav", clip)], OPEN_ACCESS)
        assert one.engine.clones == 1
        # The other replica lists it, finds it by name, and speaks it from the stored latents.
        assert [v.id for v in two.service.visible(OPEN_ACCESS)] == [voice.id]
        assert two.service.find("shared", OPEN_ACCESS) == voice
        conditioning = await two.service.conditioning(voice.id)
        assert conditioning == await one.service.conditioning(voice.id)
        assert two.engine.clones == 0 and two.service.recomputed == 0
        # A one-off clone of the same clip on the other replica: found in the shared latent cache.
        references = load_references([("a.wav", clip)], LIMITS)
        found = await conditioning_from(references, two.engine, two.scheduler, two.cache)
        assert found == conditioning and two.engine.clones == 0 and two.cache.disk_hits == 1
        # An edit on the second replica is what the first one speaks next.
        grown = await two.service.add_samples(voice.id, [("b.wav", tone_wav(330.0))], OPEN_ACCESS)
        assert two.engine.clones == 1 and len(grown.samples) == 2
        assert one.service.get(voice.id, OPEN_ACCESS) == grown
        assert await one.service.conditioning(voice.id) == await two.service.conditioning(voice.id)
        assert one.engine.clones == 1, "the first replica loaded the new latents, computed nothing"
        two.service.delete(voice.id, OPEN_ACCESS)
        assert one.service.visible(OPEN_ACCESS) == []

    asyncio.run(scenario())


def test_migrations_are_versioned_applied_once_and_idempotent(postgres_url: str) -> None:
    versions = [step.version for step in MIGRATIONS]
    assert versions == sorted(set(versions)) == list(range(1, len(versions) + 1))
    applied: list[list[int]] = []
    start = threading.Barrier(3)

    def start_replica() -> None:  # three replicas starting at once, on a new database
        with psycopg.connect(postgres_url, autocommit=True) as db:
            start.wait()
            applied.append(migrate(db))

    threads = [threading.Thread(target=start_replica) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(v for done in applied for v in done) == versions, "each step applied exactly once"
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("INSERT INTO tts_latent_cache (key, data) VALUES ('k', 'x')")
        assert migrate(db) == [], "applied again: nothing to do"
        rows = db.execute("SELECT version FROM tts_schema_migrations ORDER BY version").fetchall()
        assert [v for (v,) in rows] == versions
        assert db.execute("SELECT COUNT(*) FROM tts_latent_cache").fetchone() == (1,), "data kept"
    db = Database(postgres_url)
    assert db.open() == [], "a start on a current database applies nothing"
    db.close()


def test_a_database_that_goes_away_answers_503_and_listings_go_on(postgres_url: str) -> None:
    db = Database(postgres_url, timeout_s=1.0)
    db.open()
    store = PostgresLibraryStore(db, max_voices=10)
    voice = store.create("Ada", None, "", [NewSample("a.wav", b"A", 1.0)], Latents("m", "d", b"l"))
    database = postgres_url.split("?")[0].rsplit("/", 1)[1]
    admin_url = postgres_url.replace(f"/{database}?", "/postgres?")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,)
        )
        try:
            for call in (
                lambda: store.create(
                    "Grace", None, "", [NewSample("g.wav", b"G", 1.0)], Latents("m", "d", b"l")
                ),
                lambda: store.sample_files(voice.id),
                lambda: store.delete(voice.id),
            ):
                with pytest.raises(LibraryUnavailable) as caught:
                    call()
                told = problem(caught.value)
                assert (told.kind, told.code, told.retry_after_s) == (
                    Failure.BUSY,
                    "voice_library_unavailable",
                    5,
                )
                assert "database" in told.message and "psycopg" not in told.message
            # Synthesis resolves voices on every request: listings answer from memory meanwhile.
            assert [v.id for v in store.list()] == [voice.id]
        finally:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    deadline = time.monotonic() + 30
    while True:  # back once the database is (as a client retrying after the pause it was told)
        try:
            assert store.sample_files(voice.id) == [("a.wav", b"A")]
            break
        except LibraryUnavailable:
            assert time.monotonic() < deadline, "the store did not come back with the database"
            time.sleep(0.5)
    store.close()


def test_a_database_that_cannot_be_reached_at_start_is_named(tmp_path: Path) -> None:
    url = f"postgresql://tts@/nowhere?host={tmp_path}&port=1"
    with pytest.raises(RuntimeError, match=r"voice library database at postgresql://.*cannot be used"):
        open_library(isolated_settings(tmp_path, library_url=url))
