"""The voice library survives crashes, damage and a full disk, and never destroys a voice.

Crashes: a real store in a child process is killed with SIGKILL before each of its file-system
and SQLite operations in turn (found by an audit hook and a profiler, not by hooks in our code),
then the library is opened again as a start does, and must hold the change whole or not at all,
with no leftover rows or files. Damage and loss: the real XTTS service (tiny random checkpoint)
restarted on a damaged, empty or missing database, damaged latents and a lost clip. A full disk:
the service on a small tmpfs in its own mount namespace.
"""

from __future__ import annotations

import errno
import gc
import hashlib
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sentiric_tts.voices.library_records import (
    LATENTS_NAME,
    RECORD_NAME,
    Latents,
    NewSample,
    clip_name,
    decode_latents,
    decode_record,
)
from sentiric_tts.voices.library_store import LibraryStore
from tests.service.test_voice_library import Clip, clips, created, error, misses, same_speech, speak  # noqa: F401
from tests.service.test_xtts_http import xtts_env, xtts_settings
from tests.support.server import free_port, running_server

MODEL = "fingerprint-a|xtts-cond:len=6"
LATENTS_OF = {
    "digest-kept": b"latents of the two kept clips",
    "digest-fresh": b"latents of the fresh voice",
    "digest-grown": b"latents of three clips",
    "digest-shrunk": b"latents of one clip",
}

# Runs one change on a real store and kills itself with SIGKILL just before its Nth file-system
# write, rename, removal or SQLite call (argv: library folder, change, N; 0: never). Prints how
# many such operations the change made.
CHILD = r"""
import os, signal, sqlite3, sys
from pathlib import Path
from sentiric_tts.voices.library_store import LibraryStore
from sentiric_tts.voices.library_records import Latents, NewSample

directory, change, kill_at = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
clip = Path(sys.argv[4]).read_bytes()
store = LibraryStore(directory, max_voices=10)  # the start before the change: not counted
kept = store.list()[0]
steps = 0

def step():
    global steps
    steps += 1
    if steps == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

def audit(event, args):
    if event == "open" and args[2] & WRITES:
        step()
    elif event in ("os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.link", "shutil.rmtree"):
        step()

def profile(frame, event, arg):
    if event == "c_call" and isinstance(getattr(arg, "__self__", None), (sqlite3.Connection, sqlite3.Cursor)):
        step()

sys.addaudithook(audit)
sys.setprofile(profile)
if change == "create":
    samples = [NewSample("a.wav", clip, 3.0), NewSample("b.wav", clip, 2.0)]
    store.create("Fresh", "en", "new", samples, Latents(MODEL, "digest-fresh", LATENTS["digest-fresh"]))
elif change == "add":
    samples = [NewSample("c.wav", clip, 2.5)]
    store.add_samples(kept.id, samples, Latents(MODEL, "digest-grown", LATENTS["digest-grown"]))
elif change == "remove":
    latents = Latents(MODEL, "digest-shrunk", LATENTS["digest-shrunk"])
    store.remove_sample(kept.id, kept.samples[0].id, latents)
elif change == "rename":
    store.update(kept.id, name="Renamed", description="new words")
elif change == "delete":
    store.delete(kept.id)
sys.setprofile(None)
print(steps)
"""


def _child_source() -> str:
    return f"MODEL = {MODEL!r}\nLATENTS = {LATENTS_OF!r}\n{CHILD}"


def run_change(directory: Path, change: str, kill_at: int, clip: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _child_source(), str(directory), change, str(kill_at), str(clip)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def base_library(directory: Path, recordings: list[Clip]) -> None:
    """A library of one voice, "Kept", with two real clips and latents tagged for MODEL."""
    store = LibraryStore(directory, max_voices=10)
    store.create(
        "Kept",
        None,
        "old",
        [NewSample("one.wav", recordings[0][1], 3.0), NewSample("two.wav", recordings[1][1], 4.0)],
        Latents(MODEL, "digest-kept", LATENTS_OF["digest-kept"]),
    )


def library_state(store: LibraryStore) -> list[tuple[object, ...]]:
    """What a client could see of each voice (ids aside: a create draws a new one each run):
    its metadata and a digest of each clip's bytes."""
    return [
        (
            v.name,
            v.description,
            v.language,
            v.reference_digest,
            tuple((name, hashlib.sha256(data).hexdigest()) for name, data in store.sample_files(v.id)),
        )
        for v in store.list()
    ]


def assert_consistent(directory: Path, store: LibraryStore) -> None:
    """Rows, voice.json, clips and latents agree, and nothing else is left in the folder."""
    voices = {voice.id: voice for voice in store.list()}
    assert {p.name for p in directory.iterdir() if p.is_dir()} == set(voices)
    assert {p.name for p in directory.iterdir() if p.is_file()} <= {
        "library.db",
        "library.db-wal",
        "library.db-shm",
    }
    for voice in voices.values():
        folder = directory / voice.id
        present = {p.name for p in folder.iterdir()}
        named = {RECORD_NAME} | {clip_name(s.id) for s in voice.samples}
        assert named <= present <= named | {LATENTS_NAME}, sorted(present)
        assert decode_record((folder / RECORD_NAME).read_bytes()) == voice
        stored = store.latents(voice.id, MODEL)
        assert stored in (None, LATENTS_OF[voice.reference_digest]), "latents never belong to other clips"
    with sqlite3.connect(directory / "library.db") as db:
        (samples,) = db.execute("SELECT COUNT(*) FROM samples").fetchone()
    assert samples == sum(len(v.samples) for v in voices.values())


@pytest.fixture(scope="module")
def clip_file(clips: list[Clip], tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    path = tmp_path_factory.mktemp("clip") / "clip2.wav"
    path.write_bytes(clips[2][1])
    return path


@pytest.mark.parametrize("change", ["create", "add", "remove", "rename", "delete"])
def test_a_change_killed_at_any_step_leaves_all_of_it_or_none(
    change: str,
    tmp_path: Path,
    clips: list[Clip],  # noqa: F811
    clip_file: Path,
) -> None:
    base = tmp_path / "base"
    base_library(base, clips)
    before = library_state(LibraryStore(base, max_voices=10))

    done = tmp_path / "done"
    shutil.copytree(base, done)
    finished = run_change(done, change, 0, clip_file)
    assert finished.returncode == 0, finished.stderr
    steps = int(finished.stdout)
    assert steps >= 8, f"{change} made only {steps} operations: the hooks did not see them"
    after = library_state(LibraryStore(done, max_voices=10))
    assert after != before

    outcomes = []
    for kill_at in range(1, steps + 1):
        work = tmp_path / f"killed-{kill_at}"
        shutil.copytree(base, work)
        killed = run_change(work, change, kill_at, clip_file)
        assert killed.returncode == -signal.SIGKILL, (kill_at, killed.stderr)
        restarted = LibraryStore(work, max_voices=10)
        state = library_state(restarted)
        assert state in (before, after), f"killed before step {kill_at} of {change}: {state}"
        assert_consistent(work, restarted)
        assert not LibraryStore(work, max_voices=10).recovery.eventful, "a second start finds it tidy"
        outcomes.append("after" if state == after else "before")
        shutil.rmtree(work)
    # Early kills leave nothing of the change; once its commit point has passed, all of it.
    assert outcomes[0] == "before" and "after" in outcomes
    assert outcomes == sorted(outcomes, key=["before", "after"].index), outcomes


def test_a_sample_add_killed_in_its_commit_restarts_whole_on_the_service(
    xtts_dir: Path,
    tmp_path: Path,
    clips: list[Clip],  # noqa: F811
    clip_file: Path,
) -> None:
    """The finding: SIGKILL inside the commit of a sample-add. The service starts on what the
    kill left and serves the voice with all its clips, nothing orphaned, latents not lying."""
    base = tmp_path / "base" / "voices"
    base_library(base, clips)
    done = tmp_path / "done"
    shutil.copytree(base, done)
    steps = int(run_change(done, "add", 0, clip_file).stdout)
    for kill_at in range(1, steps + 1):
        data = tmp_path / f"killed-{kill_at}"
        shutil.copytree(base, data / "voices")
        assert run_change(data / "voices", "add", kill_at, clip_file).returncode == -signal.SIGKILL
        [folder] = [p for p in (data / "voices").iterdir() if p.name.startswith("v_")]
        written = folder / RECORD_NAME  # absent for a moment while it is replaced
        record = decode_record(written.read_bytes()) if written.is_file() else None
        if record is not None and len(record.samples) == 3:
            break  # the first kill after the change took effect: before its SQLite commit
        shutil.rmtree(data)
    else:
        pytest.fail("no kill point left the added clip")
    with sqlite3.connect(data / "voices" / "library.db") as db:
        assert db.execute("SELECT COUNT(*) FROM samples").fetchone() == (2,), "the index had not committed"

    with (
        running_server(xtts_settings(data, xtts_dir)) as url,
        httpx.Client(base_url=url, timeout=300) as client,
    ):
        [voice] = library_listing(client)
        assert [s["filename"] for s in voice["samples"]] == ["one.wav", "two.wav", "c.wav"]
        assert speak(client, voice="Kept").status_code == 200
        assert misses(client) == 1, "latents tagged for the old clips are not used: recomputed"
    present = sorted(p.name for p in folder.iterdir())
    assert present == sorted([RECORD_NAME, LATENTS_NAME, *(clip_name(s["id"]) for s in voice["samples"])])


def test_an_older_library_is_upgraded_without_losing_anything(tmp_path: Path) -> None:
    """A library.db from before voice.json (no owner column, latents tagged in the rows)."""
    folder = tmp_path / "v_0123456789ab"
    folder.mkdir()
    (folder / "s_00000000000a.clip").write_bytes(b"first clip")
    (folder / "s_00000000000b.clip").write_bytes(b"second clip")
    (folder / LATENTS_NAME).write_bytes(b"raw latents")
    with sqlite3.connect(tmp_path / "library.db") as db:
        db.executescript(
            """
            CREATE TABLE voices (id TEXT PRIMARY KEY, name TEXT NOT NULL, name_key TEXT NOT NULL,
                language TEXT, description TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL, reference_digest TEXT NOT NULL, latents_model TEXT,
                latents_digest TEXT);
            CREATE UNIQUE INDEX voices_name_key ON voices (name_key);
            CREATE TABLE samples (id TEXT PRIMARY KEY, voice_id TEXT NOT NULL REFERENCES voices (id)
                ON DELETE CASCADE, position INTEGER NOT NULL, filename TEXT NOT NULL, seconds REAL NOT NULL);
            INSERT INTO voices VALUES ('v_0123456789ab', 'Old Timer', 'old timer', 'de', 'from before',
                '2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z', 'digest-old', 'model-old', 'digest-old');
            INSERT INTO samples VALUES ('s_00000000000b', 'v_0123456789ab', 0, 'b.wav', 2.5);
            INSERT INTO samples VALUES ('s_00000000000a', 'v_0123456789ab', 1, 'a.wav', 3.5);
            """
        )
    store = LibraryStore(tmp_path, max_voices=10)
    [voice] = store.list()
    assert (voice.name, voice.language, voice.description, voice.owner) == (
        "Old Timer",
        "de",
        "from before",
        None,
    )
    assert [(s.id, s.filename, s.seconds) for s in voice.samples] == [
        ("s_00000000000b", "b.wav", 2.5),
        ("s_00000000000a", "a.wav", 3.5),
    ]
    assert store.sample_files(voice.id) == [("b.wav", b"second clip"), ("a.wav", b"first clip")]
    assert store.latents(voice.id, "model-old") == b"raw latents", "the tagged latents are still valid"
    assert decode_record((folder / RECORD_NAME).read_bytes()) == voice
    assert store.recovery.upgraded == 1
    with sqlite3.connect(tmp_path / "library.db") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (1,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert "owner" in {row[1] for row in db.execute("PRAGMA table_info(voices)")}
    # The upgraded library takes changes and reopens the same.
    store.update(voice.id, name="Old Timer II")
    assert [v.name for v in LibraryStore(tmp_path, max_voices=10).list()] == ["Old Timer II"]


def test_a_database_damaged_inside_is_found_at_open_and_rebuilt(tmp_path: Path) -> None:
    store = LibraryStore(tmp_path, max_voices=100)
    for index in range(30):  # rows over several pages
        sample = NewSample(f"clip{index}.wav", b"clip", 1.0)
        store.create(f"Voice {index}", None, "words " * 60, [sample], Latents(MODEL, "digest-kept", b"x"))
    before = store.list()
    del store
    gc.collect()  # closed: the WAL is checked into library.db and removed
    database = tmp_path / "library.db"
    assert not Path(f"{database}-wal").exists()
    damaged = bytearray(database.read_bytes())
    assert len(damaged) >= 4 * 4096
    damaged[2 * 4096 : 3 * 4096] = os.urandom(4096)  # its third page: noise
    database.write_bytes(bytes(damaged))
    reopened = LibraryStore(tmp_path, max_voices=100)
    assert reopened.list() == before
    moved = reopened.recovery.moved_aside
    assert moved is not None and moved.read_bytes() == bytes(damaged)
    assert reopened.recovery.rows_written == 30


def test_a_lost_voice_json_comes_back_from_its_row(tmp_path: Path) -> None:
    store = LibraryStore(tmp_path, max_voices=10)
    voice = store.create(
        "Ada", None, "", [NewSample("a.wav", b"A", 1.0)], Latents(MODEL, "digest-kept", b"x")
    )
    (tmp_path / voice.id / RECORD_NAME).write_bytes(b'{"format": 1, "id": "v_trunc')  # damaged
    reopened = LibraryStore(tmp_path, max_voices=10)
    assert reopened.list() == (voice,) and reopened.recovery.records_restored == 1
    assert decode_record((tmp_path / voice.id / RECORD_NAME).read_bytes()) == voice


# --- the real service ---


@pytest.fixture(scope="module")
def prepared(xtts_dir: Path, clips: list[Clip], tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]  # noqa: F811
    """A data folder holding two library voices made by the service, with what it said of them."""
    data = tmp_path_factory.mktemp("prepared")
    with (
        running_server(xtts_settings(data, xtts_dir)) as url,
        httpx.Client(base_url=url, timeout=300) as client,
    ):
        alpha = created(client, "Alpha", clips[:2], language="de", description="two clips")
        beta = created(client, "Beta", clips[1:2])
        speech = {name: speak(client, voice=name).content for name in ("Alpha", "Beta")}
        listing = library_listing(client)
    return {"data": data, "alpha": alpha, "beta": beta, "speech": speech, "listing": listing}


def library_listing(client: httpx.Client) -> list[dict]:  # type: ignore[type-arg]
    return [v for v in client.get("/api/voices").json()["voices"] if v["kind"] == "library"]


def copy_of(prepared: dict, tmp_path: Path) -> Path:  # type: ignore[type-arg]
    data = tmp_path / "data"
    shutil.copytree(prepared["data"], data)
    return data


def test_a_damaged_database_is_moved_aside_and_every_voice_survives(
    prepared: dict,  # type: ignore[type-arg]
    xtts_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = copy_of(prepared, tmp_path)
    for name in ("library.db-wal", "library.db-shm"):  # its WAL would still hold every page
        (data / "voices" / name).unlink(missing_ok=True)
    database = data / "voices" / "library.db"
    damage = b"this is not an SQLite database " * 200
    database.write_bytes(damage)
    caplog.set_level(logging.INFO, logger="sentiric_tts")
    with (
        running_server(xtts_settings(data, xtts_dir)) as url,
        httpx.Client(base_url=url, timeout=300) as client,
    ):
        assert library_listing(client) == prepared["listing"]
        again = speak(client, voice="Alpha")
        assert again.status_code == 200 and same_speech(again.content, prepared["speech"]["Alpha"])
        assert misses(client) == 0, "the voice's stored latents were used: nothing recomputed"
    [moved] = [p for p in (data / "voices").iterdir() if p.name.startswith("library.db.damaged-")]
    assert moved.read_bytes() == damage, "the damaged database is kept for the operator"
    [warning] = [r.getMessage() for r in caplog.records if "moved aside" in r.getMessage()]
    assert str(moved) in warning and warning.count("\n") == 0
    assert any("indexed 2 voice(s) from their folders" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("loss", ["empty", "missing"])
def test_an_empty_or_missing_database_keeps_every_voice(
    loss: str,
    prepared: dict,  # type: ignore[type-arg]
    xtts_dir: Path,
    tmp_path: Path,
) -> None:
    data = copy_of(prepared, tmp_path)
    for name in ("library.db-wal", "library.db-shm"):
        (data / "voices" / name).unlink(missing_ok=True)
    database = data / "voices" / "library.db"
    if loss == "empty":
        database.write_bytes(b"")
    else:
        database.unlink()
    folders = sorted(p.name for p in (data / "voices").iterdir() if p.name.startswith("v_"))
    with (
        running_server(xtts_settings(data, xtts_dir)) as url,
        httpx.Client(base_url=url, timeout=300) as client,
    ):
        assert library_listing(client) == prepared["listing"]
        for name in ("Alpha", "Beta"):
            again = speak(client, voice=name)
            assert again.status_code == 200 and same_speech(again.content, prepared["speech"][name])
    assert sorted(p.name for p in (data / "voices").iterdir() if p.name.startswith("v_")) == folders
    # And the rebuilt index holds them for the start after.
    with (
        running_server(xtts_settings(data, xtts_dir)) as url,
        httpx.Client(base_url=url, timeout=300) as client,
    ):
        assert library_listing(client) == prepared["listing"]


def test_damaged_latents_are_recomputed_and_a_lost_clip_is_a_clear_409(
    prepared: dict,  # type: ignore[type-arg]
    xtts_dir: Path,
    tmp_path: Path,
    clips: list[Clip],  # noqa: F811
) -> None:
    data = copy_of(prepared, tmp_path)
    alpha, beta = prepared["alpha"], prepared["beta"]
    beta_latents = data / "voices" / beta["id"] / LATENTS_NAME
    beta_latents.write_bytes(beta_latents.read_bytes()[:-100] + os.urandom(100))
    lost = alpha["samples"][0]
    (data / "voices" / alpha["id"] / clip_name(lost["id"])).unlink()
    shutil.rmtree(data / "cache" / "latents")  # no cached conditioning to fall back on
    with (
        running_server(xtts_settings(data, xtts_dir)) as url,
        httpx.Client(base_url=url, timeout=300) as client,
    ):
        again = speak(client, voice="Beta")
        assert again.status_code == 200, again.text
        assert same_speech(again.content, prepared["speech"]["Beta"])
        assert misses(client) == 1, "Beta's damaged latents were recomputed from its clip"
        assert decode_latents(beta_latents.read_bytes()) is not None, "and stored again, intact"

        played = client.get(f"/api/voices/{alpha['id']}/sample")
        assert played.status_code == 409, played.text
        assert error(played)["code"] == "sample_missing" and lost["id"] in error(played)["message"]
        grow = client.post(f"/api/voices/{alpha['id']}/samples", files=[("files", clips[2])])
        assert grow.status_code == 409 and error(grow)["code"] == "sample_missing"
        assert speak(client, voice="Alpha").status_code == 200, "its latents need no clip"
        removed = client.delete(f"/api/voices/{alpha['id']}/samples/{lost['id']}")
        assert removed.status_code == 200, removed.text
        assert [s["id"] for s in removed.json()["samples"]] == [alpha["samples"][1]["id"]]
        assert client.get(f"/api/voices/{alpha['id']}/sample").status_code == 200
        assert speak(client, voice="Alpha").status_code == 200


# --- a full disk ---


def _namespace_command() -> list[str]:
    """`unshare` that gives the service a mount namespace where it may mount a tmpfs: as any user
    through a user namespace, or as root directly where user namespaces are off."""
    if shutil.which("unshare") is None:
        pytest.fail("The full-disk test needs `unshare` (util-linux) to give the service a small tmpfs.")
    for command in (["unshare", "--user", "--map-root-user", "--mount"], ["unshare", "--mount"]):
        probe = subprocess.run(
            [*command, "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /tmp"], capture_output=True, timeout=30
        )
        if probe.returncode == 0:
            return command
    pytest.fail(
        "The full-disk test cannot mount a tmpfs: enable unprivileged user namespaces "
        "(sysctl kernel.unprivileged_userns_clone=1 or user.max_user_namespaces > 0) or run as root. "
        f"unshare said: {probe.stderr.decode(errors='replace').strip()}"
    )


@pytest.fixture()
def service_on_small_disk(xtts_dir: Path, tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """The service with its data folder on an 8 MiB tmpfs; yields its URL, that folder as this
    process sees it (through /proc/<pid>/root) and the service's log."""
    data, log_path = tmp_path / "data", tmp_path / "service.log"
    data.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "TTS_DATA_DIR": str(data),
        **xtts_env(xtts_dir),
        "TTS_PORT": str(port),
        "TTS_GRPC_ENABLED": "false",
        "TTS_GRADIO_ENABLED": "false",
    }
    mount_then_serve = 'mount -t tmpfs -o size=8m tmpfs "$1" && shift && exec "$@"'
    command = [*_namespace_command(), "sh", "-c", mount_then_serve, "sh", str(data)]
    serve = [sys.executable, "-m", "sentiric_tts", "serve", "--host", "127.0.0.1"]
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [*command, *serve], cwd=tmp_path, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert process.poll() is None, log_path.read_text()[-3000:]
        yield url, Path(f"/proc/{process.pid}/root") / data.relative_to("/"), log_path
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    with filler.open("ab") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def folder_listing(folder: Path) -> list[str]:
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if "-wal" not in p.name and "-shm" not in p.name
    )


def test_a_full_disk_is_a_507_that_changes_nothing_and_synthesis_goes_on(
    service_on_small_disk: tuple[str, Path, Path],
    clips: list[Clip],  # noqa: F811
) -> None:
    url, data, log_path = service_on_small_disk
    with httpx.Client(base_url=url, timeout=300) as client:
        roomy = created(client, "Roomy", clips[:1])
        assert (data / "voices" / roomy["id"] / RECORD_NAME).is_file(), "the test sees the service's tmpfs"
        filler = fill(data)
        listing, files = library_listing(client), folder_listing(data / "voices")

        refusals = [
            client.post("/api/voices", data={"name": "Crowded"}, files=[("files", clips[1])]),
            client.post(f"/api/voices/{roomy['id']}/samples", files=[("files", clips[1])]),
            client.patch(f"/api/voices/{roomy['id']}", json={"name": "Renamed"}),
        ]
        for response in refusals:
            assert response.status_code == 507, response.text
            assert error(response)["code"] == "insufficient_storage"
            assert (
                "full" in error(response)["message"] and "nothing was changed" in error(response)["message"]
            )
        assert library_listing(client) == listing
        assert folder_listing(data / "voices") == files, "no partial voice, clip or temporary file"

        assert speak(client, voice="Roomy").status_code == 200, "library voices still speak"
        cloned = client.post(
            "/api/tts/clone",
            data={"text": "Hello there.", "output_format": "pcm"},
            files=[("files", clips[2])],
        )
        assert cloned.status_code == 200, "a clone whose conditioning cannot be cached still speaks"

        filler.unlink()
        renamed = client.patch(f"/api/voices/{roomy['id']}", json={"name": "Renamed"})
        assert renamed.status_code == 200 and renamed.json()["name"] == "Renamed"
        crowded = created(client, "Crowded", clips[1:2])

        # A delete needs no new space for its files; SQLite may or may not find room for its
        # change. Either way the library holds the voice whole or not at all.
        fill(data)
        listing = library_listing(client)
        deleted = client.delete(f"/api/voices/{crowded['id']}")
        assert deleted.status_code in (204, 507), deleted.text
        if deleted.status_code == 204:
            assert [v for v in listing if v["id"] != crowded["id"]] == library_listing(client)
            assert not (data / "voices" / crowded["id"]).exists()
        else:
            assert library_listing(client) == listing
            assert (data / "voices" / crowded["id"] / RECORD_NAME).is_file()
    log = log_path.read_text()
    assert log.count("Cloning conditioning kept in memory only") == 1, "said once, not per request"
    assert "Traceback" not in log
