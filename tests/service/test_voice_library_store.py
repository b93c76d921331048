"""The voice library's stores on their own: ids, names, latents tags, limits, races. Each test
runs on both stores (SQLite and folders; PostgreSQL, on a real server: tests/support/postgres.py);
what only one of them has (folders, leftovers) is checked on that one."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentiric_tts.failures import Failure, RequestError
from sentiric_tts.voices.library_records import Latents, LibraryVoice, NewSample
from sentiric_tts.voices.library_rules import new_voice
from sentiric_tts.voices.library_store import LibraryStore
from sentiric_tts.voices.voice_store import VoiceStore

MODEL_A = "fingerprint-a|xtts-cond:len=6"
MODEL_B = "fingerprint-b|xtts-cond:len=6"


def sample(name: str = "ref.wav", data: bytes = b"RIFF-clip-bytes") -> NewSample:
    return NewSample(filename=name, data=data, seconds=3.25)


def latents(digest: str = "digest-1", model: str = MODEL_A, data: bytes = b"latents-1") -> Latents:
    return Latents(model=model, reference_digest=digest, data=data)


def error_of(call) -> RequestError:  # type: ignore[no-untyped-def]
    with pytest.raises(RequestError) as caught:
        call()
    return caught.value


def voice_folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir())


class Backend:
    """Opens stores of one kind over one library: a folder, or a database."""

    def __init__(self, kind: str, folder: Path, url: str | None) -> None:
        self.kind, self.folder, self.url = kind, folder, url
        self.opened: list[VoiceStore] = []

    def open(self, max_voices: int = 10) -> VoiceStore:
        """A store over the library; opened again, it is a restart (or another replica)."""
        store: VoiceStore
        if self.url is None:
            store = LibraryStore(self.folder, max_voices=max_voices)
        else:
            from sentiric_tts.voices.postgres_db import Database
            from sentiric_tts.voices.postgres_store import PostgresLibraryStore

            db = Database(self.url)
            db.open()
            store = PostgresLibraryStore(db, max_voices=max_voices)
        self.opened.append(store)
        return store

    def folders(self) -> list[str] | None:
        """The voice folders (SQLite store); None for a store that keeps no files."""
        return voice_folders(self.folder) if self.url is None else None

    def sample_rows(self) -> int:
        if self.url is None:
            with sqlite3.connect(self.folder / "library.db") as db:
                return int(db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
        import psycopg

        with psycopg.connect(self.url) as db:
            row = db.execute("SELECT COUNT(*) FROM tts_voice_samples").fetchone()
            return int(row[0]) if row else 0


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    opened = Backend(request.param, tmp_path, url)
    yield opened
    for store in opened.opened:
        store.close()


def test_create_read_update_delete_and_reopen(backend: Backend) -> None:
    store = backend.open()
    voice = store.create(
        "  Night   Reader ", "en", "calm", [sample("a.wav", b"AAA"), sample("b.mp3", b"BB")], latents()
    )
    assert voice.id.startswith("v_") and len(voice.id) == 14
    assert (voice.name, voice.language, voice.description) == ("Night Reader", "en", "calm")
    assert [s.filename for s in voice.samples] == ["a.wav", "b.mp3"]
    assert all(s.id.startswith("s_") for s in voice.samples)
    assert voice.created_at.endswith("Z") and voice.created_at == voice.updated_at
    assert store.sample_files(voice.id) == [("a.wav", b"AAA"), ("b.mp3", b"BB")]
    assert store.sample_file(voice.id, None) == ("a.wav", b"AAA")
    assert store.get(voice.id) == voice and store.has_name("night reader", owner=None)

    renamed = store.update(voice.id, name="Day Reader", clear_language=True)
    assert (renamed.name, renamed.language, renamed.description) == ("Day Reader", None, "calm")
    assert renamed.updated_at >= voice.updated_at

    reopened = backend.open()  # a restart (another replica) reads the same voices back
    assert reopened.list() == (renamed,)
    assert reopened.latents(voice.id, MODEL_A) == b"latents-1"

    reopened.delete(voice.id)
    assert reopened.list() == ()
    if backend.kind == "postgres":  # one folder is one server's; a database is shared
        assert store.list() == (), "the other replica sees the removal too"
    assert backend.folders() in ([], None)
    assert error_of(lambda: reopened.get(voice.id)).kind == Failure.NOT_FOUND


def test_names_are_unique_without_regard_to_case_and_checked(backend: Backend) -> None:
    store = backend.open()
    first = store.create("Ada", None, "", [sample()], latents())
    other = store.create("Grace", None, "", [sample()], latents())
    for call in (
        lambda: store.create("ADA", None, "", [sample()], latents()),
        lambda: store.update(other.id, name="ada"),
        lambda: store.create(
            "Claribel Dervla", None, "", [sample()], latents(), reserved_names=["Claribel Dervla"]
        ),
    ):
        error = error_of(call)
        assert (error.kind, error.code) == (Failure.CONFLICT, "voice_name_taken")
    for bad in ("", "   ", "x" * 65, "tab\there\x00", "v_0123456789ab"):
        error = error_of(lambda bad=bad: store.create(bad, None, "", [sample()], latents()))
        assert (error.kind, error.param) == (Failure.INVALID, "name"), bad
    assert [v.id for v in store.list()] == [first.id, other.id]
    assert backend.folders() in (sorted([first.id, other.id]), None), "refused creates leave nothing behind"
    assert backend.sample_rows() == 2


def test_ids_from_outside_never_reach_the_file_system(backend: Backend, tmp_path: Path) -> None:
    backend.folder = tmp_path / "voices"
    store = backend.open()
    (tmp_path / "secret").write_text("keep me")
    voice = store.create("Ada", None, "", [sample()], latents())
    for bad_id in ("../secret", "..", "v_../../x", "V_0123456789AB", "v_0123456789abc", "/etc/passwd"):
        assert error_of(lambda bad_id=bad_id: store.get(bad_id)).kind == Failure.NOT_FOUND
        assert error_of(lambda bad_id=bad_id: store.delete(bad_id)).kind == Failure.NOT_FOUND
    for bad_sample in ("../../secret", "../library.db", "s_zz"):
        error = error_of(lambda bad_sample=bad_sample: store.sample_file(voice.id, bad_sample))
        assert (error.kind, error.code) == (Failure.NOT_FOUND, "sample_not_found")
    assert (tmp_path / "secret").read_text() == "keep me"


def test_latents_are_valid_only_for_their_model_and_clips(backend: Backend) -> None:
    store = backend.open()
    voice = store.create("Ada", None, "", [sample()], latents("digest-1", MODEL_A, b"made-by-a"))
    assert store.latents(voice.id, MODEL_A) == b"made-by-a"
    # Another model (new weights, other conditioning settings): the stored latents are stale.
    assert store.latents(voice.id, MODEL_B) is None
    assert store.store_latents(voice.id, latents("digest-1", MODEL_B, b"made-by-b"))
    assert store.latents(voice.id, MODEL_B) == b"made-by-b"
    # A folder keeps one latents.bin; the database one row per model, so replicas that run
    # different models (a rolling upgrade) do not recompute each other's away.
    assert store.latents(voice.id, MODEL_A) == (None if backend.kind == "sqlite" else b"made-by-a")
    # Latents computed from clips the voice no longer has are not kept.
    assert not store.store_latents(voice.id, latents("digest-old", MODEL_A, b"stale"))
    assert store.latents(voice.id, MODEL_B) == b"made-by-b"


def test_samples_are_added_and_removed_but_never_the_last(backend: Backend, tmp_path: Path) -> None:
    store = backend.open()
    voice = store.create("Ada", None, "", [sample("a.wav", b"A")], latents("d-a"))
    grown = store.add_samples(voice.id, [sample("b.wav", b"B"), sample("c.wav", b"C")], latents("d-abc"))
    assert [s.filename for s in grown.samples] == ["a.wav", "b.wav", "c.wav"]
    assert grown.reference_digest == "d-abc" and store.latents(voice.id, MODEL_A) == b"latents-1"
    first = grown.samples[0]
    shrunk = store.remove_sample(voice.id, first.id, latents("d-bc", data=b"latents-bc"))
    assert [s.filename for s in shrunk.samples] == ["b.wav", "c.wav"]
    assert store.latents(voice.id, MODEL_A) == b"latents-bc"
    assert not (tmp_path / voice.id / f"{first.id}.clip").exists()
    store.remove_sample(voice.id, shrunk.samples[0].id, latents("d-c"))
    last = store.get(voice.id).samples[0]
    error = error_of(lambda: store.remove_sample(voice.id, last.id, latents("d-none")))
    assert (error.kind, error.code) == (Failure.CONFLICT, "last_sample")
    assert store.sample_files(voice.id) == [("c.wav", b"C")], "a refused removal keeps the clip"
    assert store.get(voice.id).reference_digest == "d-c"


def test_the_library_has_a_size_limit(backend: Backend) -> None:
    store = backend.open(max_voices=2)
    store.create("One", None, "", [sample()], latents())
    other = backend.open(max_voices=2)  # the limit holds across replicas
    other.create("Two", None, "", [sample()], latents())
    for full in (store, other):
        error = error_of(lambda full=full: full.create("Three", None, "", [sample()], latents()))
        assert (error.kind, error.code) == (Failure.CONFLICT, "voice_library_full")
    assert len(store.list()) == 2 and backend.sample_rows() == 2


def test_an_imported_voice_keeps_its_ids_owner_and_times_and_the_rules_hold(backend: Backend) -> None:
    """`import_voice`: a voice from another library (sentiric-tts library copy) kept as it was."""
    owner, other_owner = "a" * 64, "b" * 64
    made = new_voice(
        "Ada", "en", "calm", [sample("a.wav", b"AAA"), sample("b.wav", b"BB")], latents(), owner=owner
    )
    voice = dataclasses.replace(
        made, created_at="2020-01-02T03:04:05.678Z", updated_at="2021-01-01T00:00:00.000Z"
    )
    store = backend.open(max_voices=2)
    assert store.import_voice(voice, [b"AAA", b"BB"], latents()) == voice
    reopened = backend.open(max_voices=2)
    assert reopened.list() == (voice,)
    assert reopened.sample_files(voice.id) == [("a.wav", b"AAA"), ("b.wav", b"BB")]
    assert reopened.latents(voice.id, MODEL_A) == b"latents-1"

    def imported(name: str, who: str | None, digest: str = "digest-1") -> LibraryVoice:
        return new_voice(name, None, "", [sample()], latents(digest), owner=who)

    for call, code in (
        (lambda: store.import_voice(voice, [b"AAA", b"BB"], None), "voice_id_taken"),
        (lambda: store.import_voice(imported("ADA", owner), [b"x"], None), "voice_name_taken"),
    ):
        error = error_of(call)
        assert (error.kind, error.code) == (Failure.CONFLICT, code)
    theirs = imported("Ada", other_owner)  # another owner's name; latents made from other clips
    store.import_voice(theirs, [b"x"], latents("digest-other"))
    assert store.latents(theirs.id, MODEL_A) is None, "stale latents are not kept"
    full = error_of(lambda: store.import_voice(imported("Third", owner), [b"x"], None))
    assert full.code == "voice_library_full"
    assert error_of(lambda: store.import_voice(imported("Few", owner), [], None)).kind == Failure.INVALID

    # Replacing: the old voice goes and the new one comes in one change (the limit counts so).
    successor = imported("Ada", owner, digest="digest-2")
    missing = error_of(lambda: store.import_voice(successor, [b"new"], None, replacing="v_000000000000"))
    assert missing.kind == Failure.NOT_FOUND
    store.import_voice(successor, [b"new"], latents("digest-2"), replacing=voice.id)
    assert {v.id for v in store.list()} == {theirs.id, successor.id}
    assert backend.open().sample_files(successor.id) == [("ref.wav", b"new")]
    assert backend.folders() in (sorted([theirs.id, successor.id]), None)
    assert backend.sample_rows() == 2


@pytest.mark.parametrize("replicas", [1, 2])
def test_concurrent_creates_with_one_name_make_one_voice(backend: Backend, replicas: int) -> None:
    """Eight creates of one name at once, through one store or two (two replicas, each with its
    own connections): one voice, seven 409s."""
    stores = [backend.open(max_voices=100) for _ in range(replicas)]
    store = stores[0]
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def create(index: int) -> None:
        start.wait()
        try:
            stores[index % replicas].create(
                "Same Name", None, "", [sample(data=bytes([index]) * 100)], latents()
            )
            outcomes.append("created")
        except RequestError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created"] + ["voice_name_taken"] * 7
    assert len(store.list()) == 1 and all(other.list() == store.list() for other in stores)
    assert backend.folders() in ([store.list()[0].id], None), "the losers leave no files"
    assert backend.sample_rows() == 1


def test_renames_conflict_across_replicas_and_owners_keep_their_own_names(backend: Backend) -> None:
    one, two = backend.open(), backend.open()
    ada = one.create("Ada", None, "", [sample()], latents(), owner="a" * 64)
    grace = two.create("Grace", None, "", [sample()], latents(), owner="a" * 64)
    other_owners = two.create("ada", None, "", [sample()], latents(), owner="b" * 64)
    assert other_owners.name == "ada", "names are unique per owner"
    error = error_of(lambda: one.update(grace.id, name="ADA"))
    assert (error.kind, error.code) == (Failure.CONFLICT, "voice_name_taken")
    assert two.get(grace.id).name == "Grace" and two.has_name("ada", "a" * 64)
    renamed = two.update(ada.id, name="Ada Lovelace", description="first")
    assert one.get(ada.id) == renamed, "the other replica lists the change"
    assert {v.id for v in one.list()} == {ada.id, grace.id, other_owners.id}


def test_unfinished_folders_are_swept_at_open_and_nothing_else(tmp_path: Path) -> None:
    store = LibraryStore(tmp_path, max_voices=10)
    kept = store.create("Ada", None, "", [sample()], latents())
    (tmp_path / ".tmp-v_0123456789ab").mkdir()  # a create that crashed before its rename
    (tmp_path / ".del-v_ba9876543210").mkdir()  # a delete that crashed before its removal
    (tmp_path / "piper").mkdir()  # not the library's: the Piper voices folder lives here too
    stranger = tmp_path / "v_00000000abcd"  # no voice.json and no row: kept, never guessed at
    stranger.mkdir()
    (stranger / "s_000000000001.clip").write_bytes(b"someone's clip")
    reopened = LibraryStore(tmp_path, max_voices=10)
    assert voice_folders(tmp_path) == sorted([kept.id, "piper", stranger.name])
    assert (stranger / "s_000000000001.clip").read_bytes() == b"someone's clip"
    assert reopened.recovery.unreadable == [stranger.name] and reopened.recovery.leftovers == 2
    assert [v.id for v in reopened.list()] == [kept.id]


def test_rows_and_files_agree_after_a_failed_add(backend: Backend) -> None:
    store = backend.open()
    voice = store.create("Ada", None, "", [sample()], latents())
    store.delete(voice.id)
    error = error_of(lambda: store.add_samples(voice.id, [sample()], latents("d-2")))
    assert error.kind == Failure.NOT_FOUND
    assert backend.folders() in ([], None)
    assert backend.sample_rows() == 0
