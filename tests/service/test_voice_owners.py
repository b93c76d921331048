"""With API keys set, a library voice belongs to the key that created it: on the real XTTS service
(tiny random checkpoint), every door answers another key as if the voice did not exist."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from websockets.sync.client import connect

from tests.service.test_voice_library import Clip, clips, created, error, speak  # noqa: F401
from tests.service.test_xtts_http import xtts_settings
from tests.support.grpc_client import refusal, run, unary
from tests.support.server import free_port, running_server

# Random per run: a key found in a stored file can only have been written there by the service.
ALPHA, BETA, ROOT = (secrets.token_urlsafe(24) for _ in range(3))
MISSING = "v_000000000000"


@dataclass(frozen=True)
class Service:
    url: str
    grpc_target: str
    data: Path


@pytest.fixture(scope="module")
def service(
    xtts_dir: Path,
    clips: list[Clip],  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Service]:
    data = tmp_path_factory.mktemp("owners")
    with (
        running_server(xtts_settings(data, xtts_dir)) as url,
        httpx.Client(base_url=url, timeout=300) as client,
    ):
        created(client, "Open Voice", clips[:1])  # made while the API was open: it has no owner
    port = free_port()
    keyed = xtts_settings(
        data,
        xtts_dir,
        api_keys=f"{ALPHA},{BETA}",
        admin_api_keys=ROOT,
        grpc_enabled=True,
        grpc_host="127.0.0.1",
        grpc_port=port,
    )
    with running_server(keyed) as url:
        yield Service(url, f"127.0.0.1:{port}", data)


@contextmanager
def as_key(service: Service, key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, headers={"X-API-Key": key}, timeout=300) as client:
        yield client


def listed(client: httpx.Client, path: str) -> set[str]:
    return {voice["id"] for voice in client.get(path).json()["voices"]}


def ws_start(service: Service, key: str, voice: str) -> dict[str, Any]:
    """The first event a /ws/tts session sends back to a start message naming `voice`."""
    url = service.url.replace("http://", "ws://") + f"/ws/tts?api_key={key}"
    with connect(url, open_timeout=30) as socket:
        socket.send(json.dumps({"type": "start", "format": "pcm", "voice": voice}))
        while True:
            frame = socket.recv(120)
            if isinstance(frame, str):
                return dict(json.loads(frame))


def grpc_speech(service: Service, key: str, voice: str) -> bytes:
    metadata = (("authorization", f"Bearer {key}"),)
    return run(lambda: unary(service.grpc_target, metadata, text="Hello there.", voice=voice))


def test_another_key_cannot_see_use_or_change_a_voice(
    service: Service,
    clips: list[Clip],  # noqa: F811
) -> None:
    with as_key(service, ALPHA) as alpha, as_key(service, BETA) as beta:
        mine = created(alpha, "Mine", clips[:1])
        voice_id, sample_id = mine["id"], mine["samples"][0]["id"]
        assert alpha.get(f"/api/voices/{voice_id}").json() == mine
        assert speak(alpha, voice="Mine").headers["x-voice"] == voice_id

        # The REST door: 404 exactly as for a voice that was never made (ids cannot be probed).
        for method, path, options in (
            ("GET", "/api/voices/{}", {}),
            ("PATCH", "/api/voices/{}", {"json": {"name": "Stolen"}}),
            ("DELETE", "/api/voices/{}", {}),
            ("POST", "/api/voices/{}/samples", {"files": [("files", clips[1])]}),
            ("DELETE", "/api/voices/{}/samples/" + sample_id, {}),
            ("GET", "/api/voices/{}/sample", {}),
        ):
            theirs = beta.request(method, path.format(voice_id), **options)
            missing = beta.request(method, path.format(MISSING), **options)
            assert theirs.status_code == missing.status_code == 404, (method, path, theirs.text)
            assert error(theirs) == {
                **error(missing),
                "message": error(missing)["message"].replace(MISSING, voice_id),
            }
        assert alpha.get(f"/api/voices/{voice_id}").json() == mine, "nothing was changed"

        # Listings: absent for the other key, present for the owner.
        for path in ("/api/voices", "/api/speakers", "/v1/audio/voices"):
            assert voice_id in listed(alpha, path) and voice_id not in listed(beta, path), path

        # Speaking with it, by id and by name, on every door.
        for wanted in (voice_id, "Mine"):
            for response in (
                speak(beta, voice=wanted),
                beta.post("/api/tts/plan", json={"text": "Hello.", "voice": wanted}),
                beta.post("/api/tts", json={"text": f'<speak><voice name="{wanted}">Hello.</voice></speak>'}),
            ):
                assert response.status_code == 422 and error(response)["code"] == "unknown_voice", (
                    response.text
                )
                assert voice_id not in (error(response)["allowed"] or [])
            openai = beta.post(
                "/v1/audio/speech", json={"model": "tts-1", "input": "Hello.", "voice": wanted}
            )
            assert openai.status_code == 400 and openai.json()["error"]["code"] == "unknown_voice"
            event = ws_start(service, BETA, wanted)
            assert (event["type"], event["code"]) == ("error", "unknown_voice"), event
            refused = refusal(
                lambda wanted=wanted: unary(
                    service.grpc_target, (("x-api-key", BETA),), text="Hello there.", voice=wanted
                )
            )
            assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT and "Unknown voice" in str(
                refused.details()
            )
        assert ws_start(service, ALPHA, voice_id)["voice"] == voice_id
        assert grpc_speech(service, ALPHA, voice_id), "the owner speaks with it on gRPC"

        # Names are the owner's own: the other key may use the same one for a voice of its own.
        theirs = created(beta, "Mine", clips[1:2])
        assert theirs["id"] != voice_id
        assert speak(beta, voice="Mine").headers["x-voice"] == theirs["id"]
        assert speak(alpha, voice="mine").headers["x-voice"] == voice_id


def test_an_admin_key_sees_and_manages_every_voice(
    service: Service,
    clips: list[Clip],  # noqa: F811
) -> None:
    with as_key(service, ROOT) as root, as_key(service, ALPHA) as alpha, as_key(service, BETA) as beta:
        alphas = created(alpha, "Alpha Voice", clips[1:2])
        betas = created(beta, "Beta Voice", clips[1:2])
        everything = listed(root, "/api/voices")
        assert {alphas["id"], betas["id"]} <= everything and {alphas["id"], betas["id"]} <= listed(
            root, "/api/speakers"
        )
        assert root.get(f"/api/voices/{alphas['id']}").json() == alphas
        spoken = speak(root, voice=alphas["id"])
        assert spoken.status_code == 200 and spoken.headers["x-voice"] == alphas["id"]
        assert grpc_speech(service, ROOT, betas["id"])

        renamed = root.patch(f"/api/voices/{alphas['id']}", json={"name": "Renamed By Admin"})
        assert renamed.status_code == 200, renamed.text
        assert alpha.get(f"/api/voices/{alphas['id']}").json()["name"] == "Renamed By Admin"
        assert root.delete(f"/api/voices/{betas['id']}").status_code == 204
        assert beta.get(f"/api/voices/{betas['id']}").status_code == 404

        roots = created(root, "Root Voice", clips[:1])
        assert roots["id"] not in listed(alpha, "/api/voices") | listed(beta, "/api/voices")


def test_voices_made_while_the_api_was_open_are_the_admins_only(service: Service) -> None:
    with as_key(service, ROOT) as root, as_key(service, ALPHA) as alpha:
        [open_voice] = [v for v in root.get("/api/voices").json()["voices"] if v["name"] == "Open Voice"]
        assert speak(root, voice="Open Voice").status_code == 200
        assert open_voice["id"] not in listed(alpha, "/api/voices")
        assert alpha.get(f"/api/voices/{open_voice['id']}").status_code == 404
        assert error(speak(alpha, voice="Open Voice"))["code"] == "unknown_voice"


def test_keys_are_stored_only_as_hashes(
    service: Service,
    clips: list[Clip],  # noqa: F811
) -> None:
    made: dict[str, list[str]] = {}
    for key, names in ((ALPHA, ["Hash A1", "Hash A2"]), (BETA, ["Hash B"]), (ROOT, ["Hash R"])):
        with as_key(service, key) as client:
            made[key] = [created(client, name, clips[:1])["id"] for name in names]
    library = service.data / "voices"
    stored = b"".join(path.read_bytes() for path in library.rglob("*") if path.is_file())
    for key in (ALPHA, BETA, ROOT):
        assert key.encode() not in stored
    owner = {p.parent.name: json.loads(p.read_text())["owner"] for p in library.glob("v_*/voice.json")}
    per_key = {key: {owner[voice_id] for voice_id in ids} for key, ids in made.items()}
    assert all(len(owners) == 1 for owners in per_key.values()), "one owner per key"
    hashes = [next(iter(owners)) for owners in per_key.values()]
    assert len(set(hashes)) == 3 and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes)
    with sqlite3.connect(library / "library.db") as db:
        indexed = dict(db.execute("SELECT id, owner FROM voices"))
    assert all(indexed[voice_id] == owner[voice_id] for voice_id in owner)
    [open_voice] = [v for v, o in owner.items() if o is None]
    assert json.loads((library / open_voice / "voice.json").read_text())["name"] == "Open Voice"


def test_a_removed_keys_voices_stay_for_the_admin_and_an_open_service_sees_all(
    service: Service,
    xtts_dir: Path,
    tmp_path: Path,
    clips: list[Clip],  # noqa: F811
) -> None:
    with as_key(service, BETA) as beta:
        leaving = created(beta, "Leaving", clips[:1])["id"]
    with as_key(service, ALPHA) as alpha:
        staying = created(alpha, "Staying", clips[:1])["id"]
    data = tmp_path / "data"
    shutil.copytree(service.data / "voices", data / "voices")
    without_beta = xtts_settings(data, xtts_dir, api_keys=ALPHA, admin_api_keys=ROOT)
    with running_server(without_beta) as url:
        with httpx.Client(base_url=url, headers={"X-API-Key": ROOT}, timeout=300) as root:
            assert {leaving, staying} <= listed(root, "/api/voices")
        with httpx.Client(base_url=url, headers={"X-API-Key": ALPHA}, timeout=300) as alpha:
            found = listed(alpha, "/api/voices")
            assert staying in found and leaving not in found
        with httpx.Client(base_url=url, headers={"X-API-Key": BETA}, timeout=300) as removed:
            assert removed.get("/api/voices").status_code == 401
    with (
        running_server(xtts_settings(data, xtts_dir)) as url,
        httpx.Client(base_url=url, timeout=300) as anyone,
    ):
        assert {leaving, staying} <= listed(anyone, "/api/voices"), "an open service sees every voice"
        assert speak(anyone, voice=leaving).status_code == 200
