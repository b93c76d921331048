"""xtts-api-server's API under /xtts-api, as SillyTavern's XTTS provider calls it: its requests
replayed with httpx (the headers its doExtrasFetch adds, numbers as strings from its sliders,
trailing slashes, the CORS preflight a browser makes first), then once more from a real browser
page on another origin, whose <audio> element plays /tts_stream/."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.support.audio import parse_wav, to_16k, word_error_rate
from tests.support.browser import launched_chromium
from tests.support.server import isolated_settings, running_server

KEY_A, KEY_B = "st-key-alpha-0123456789", "st-key-beta-0123456789"
ORIGIN = "http://localhost:8000"  # SillyTavern's own port
BASE = "/xtts-api"
VOICE = "en_US-joe-medium"
TEXT = "The dragon slept on a mountain of gold coins."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = isolated_settings(
        tmp_path_factory.mktemp("xtts-api"), api_keys=f"{KEY_A},{KEY_B}", cors_origins=ORIGIN
    )
    with running_server(settings) as url:
        yield url


def sillytavern(url: str, key: str = KEY_A) -> httpx.Client:
    """A client sending what SillyTavern's doExtrasFetch adds to every request."""
    headers = {"Authorization": f"Bearer {key}", "Bypass-Tunnel-Reminder": "bypass", "Origin": ORIGIN}
    return httpx.Client(base_url=url + BASE, headers=headers, timeout=120)


def slider_settings(**changes: object) -> dict[str, object]:
    """SillyTavern's POST /set_tts_settings body: jQuery's .val() gives strings."""
    body: dict[str, object] = {
        "temperature": "0.75",
        "speed": "1",
        "length_penalty": "1",
        "repetition_penalty": "5",
        "top_p": "0.85",
        "top_k": "50",
        "enable_text_splitting": True,
        "stream_chunk_size": "100",
    }
    return {**body, **changes}


def generate(client: httpx.Client, text: str = TEXT, voice: str = VOICE) -> httpx.Response:
    return client.post(
        "/tts_to_audio/",
        json={"text": text, "speaker_wav": voice, "language": "en"},
        headers={"Content-Type": "application/json", "Cache-Control": "no-cache"},
    )


def seconds(wav: bytes) -> float:
    rate, _, samples = parse_wav(wav)
    return samples.size / rate


def test_a_browser_preflight_with_sillytaverns_headers_passes(server: str) -> None:
    for path, method in (("/set_tts_settings", "POST"), ("/tts_to_audio/", "POST"), ("/speakers", "GET")):
        preflight = httpx.options(
            f"{server}{BASE}{path}",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "authorization,bypass-tunnel-reminder,cache-control,content-type",
            },
        )
        assert preflight.status_code == 200, (path, preflight.text)
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert {"cache-control", "bypass-tunnel-reminder", "authorization"} <= set(allowed.split(", "))


def test_sillytavern_lists_sets_and_generates(server: str, transcribe) -> None:  # type: ignore[no-untyped-def]
    with sillytavern(server) as client:
        speakers = client.get("/speakers")
        assert speakers.status_code == 200
        assert speakers.headers["access-control-allow-origin"] == ORIGIN
        listed = speakers.json()
        assert listed == [
            {"name": VOICE, "voice_id": VOICE, "preview_url": f"{server}{BASE}/sample/{VOICE}.wav"}
        ]
        assert client.get("/speakers_list").json() == [VOICE]
        assert client.get("/languages").json() == {"languages": {"English": "en"}}

        applied = client.post(
            "/set_tts_settings", json=slider_settings(), headers={"Cache-Control": "no-cache"}
        )
        assert applied.status_code == 200 and applied.json() == {"message": "Settings successfully applied"}
        assert client.get("/get_tts_settings").json() == {
            "temperature": 0.75,
            "length_penalty": 1.0,
            "repetition_penalty": 5.0,
            "top_k": 50,
            "top_p": 0.85,
            "speed": 1.0,
            "enable_text_splitting": True,
            "stream_chunk_size": 100,
        }

        response = generate(client, voice=listed[0]["voice_id"])
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "audio/wav"
        rate, channels, samples = parse_wav(response.content)
        assert channels == 1 and samples.size / rate > 1.5
        assert word_error_rate(TEXT, transcribe(to_16k(samples, rate))) <= 0.10

        # The preview SillyTavern plays from the voice map, and a voice named as a file.
        preview = httpx.get(
            listed[0]["preview_url"], headers={"Authorization": f"Bearer {KEY_A}"}, timeout=120
        )
        assert preview.status_code == 200 and seconds(preview.content) > 0.5
        assert generate(client, "Hello.", voice=f"{VOICE}.wav").status_code == 200


def test_tts_stream_sends_a_wav_header_then_pcm_as_it_is_made(server: str, transcribe) -> None:  # type: ignore[no-untyped-def]
    text = " ".join([TEXT, "Nobody had woken it for a hundred years."] * 2)
    query = {"text": text, "speaker_wav": VOICE, "language": "en"}
    with (
        sillytavern(server) as client,
        client.stream("GET", "/tts_stream/", params=query) as response,  # SillyTavern's trailing slash
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"] == "audio/wav"
        assert response.headers.get("transfer-encoding") == "chunked"
        pieces = [piece for piece in response.iter_raw() if piece]
    assert pieces[0][:4] == b"RIFF" and len(pieces) > 2
    rate, _, samples = parse_wav(b"".join(pieces))
    assert word_error_rate(text, transcribe(to_16k(samples, rate))) <= 0.10


def test_settings_are_the_callers_own(server: str) -> None:
    with sillytavern(server, KEY_A) as alpha, sillytavern(server, KEY_B) as beta:
        normal = seconds(generate(beta).content)
        assert alpha.post("/set_tts_settings", json=slider_settings(speed="2")).status_code == 200
        assert alpha.get("/get_tts_settings").json()["speed"] == 2.0
        assert beta.get("/get_tts_settings").json()["speed"] == 1.0
        assert seconds(generate(alpha).content) < 0.7 * normal
        assert seconds(generate(beta).content) == pytest.approx(normal, rel=0.05)
        # A field left out keeps the caller's value; the other caller's stay as they were.
        assert alpha.post("/set_tts_settings", json={"temperature": 0.5}).status_code == 200
        assert alpha.get("/get_tts_settings").json()["speed"] == 2.0
        assert alpha.post("/set_tts_settings", json=slider_settings()).status_code == 200


def detail(response: httpx.Response) -> str:
    body = response.json()
    assert body["detail"] == body["error"]["message"]  # FastAPI's shape and ours agree
    return str(body["error"]["code"])


def test_bad_input_gets_a_clear_4xx(server: str) -> None:
    with sillytavern(server) as client:
        assert detail(generate(client, voice="Nobody")) == "unknown_voice"
        assert detail(generate(client, text="   ")) == "empty_text"
        wrong = client.post("/tts_to_audio/", json={"text": ["not", "text"], "speaker_wav": VOICE})
        assert wrong.status_code == 422 and detail(wrong) == "invalid_request"
        assert client.post("/tts_to_audio/", content=b"{not json").status_code == 422
        assert client.get("/tts_stream", params={"speaker_wav": VOICE}).status_code == 422  # no text
        unsupported = client.post(
            "/tts_to_audio/", json={"text": "Hi.", "language": "en", "save_path": "/tmp/x"}
        )
        assert unsupported.status_code == 422 and detail(unsupported) == "not_supported"
        language = client.post("/tts_to_audio/", json={"text": "Hi.", "speaker_wav": VOICE, "language": "xx"})
        assert language.status_code == 422 and detail(language) == "unsupported_language"
        for value in ({"temperature": "hot"}, {"speed": "9"}, {"top_k": 500}, {"stream_chunk_size": "1"}):
            refused = client.post("/set_tts_settings", json=value)
            assert refused.status_code == 422 and detail(refused) == "invalid_request", value
        for path, method in (
            ("/switch_model", "POST"),
            ("/set_output", "POST"),
            ("/set_speaker_folder", "POST"),
            ("/tts_to_file", "POST"),
            ("/get_folders", "GET"),
        ):
            response = client.request(method, path, json={})
            assert response.status_code == 422 and detail(response) == "not_supported", path
        missing = client.get("/sample/Nobody.wav")
        assert missing.status_code == 404 and detail(missing) == "unknown_voice"
        assert client.get("/get_models_list").json() == ["piper"]
    anonymous = httpx.get(f"{server}{BASE}/speakers")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "invalid_api_key"
    with sillytavern(server, "wrong-key") as stranger:
        assert stranger.post("/tts_to_audio/", json={"text": "Hi."}).status_code == 401
    with sillytavern(server) as client:
        assert client.get("/speakers").status_code == 200  # the door is still up


SILLYTAVERN_PAGE = """<!doctype html><html><body><audio id="player"></audio><script>
async function sillyTavern(endpoint, key) {
  const headers = {'Authorization': `Bearer ${key}`, 'Bypass-Tunnel-Reminder': 'bypass'};
  const voices = await (await fetch(`${endpoint}/speakers`, {headers})).json();
  const settings = await fetch(`${endpoint}/set_tts_settings`, {method: 'POST',
    headers: {...headers, 'Content-Type': 'application/json', 'Cache-Control': 'no-cache'},
    body: JSON.stringify(%s)});
  const audio = await fetch(`${endpoint}/tts_to_audio/`, {method: 'POST',
    headers: {...headers, 'Content-Type': 'application/json', 'Cache-Control': 'no-cache'},
    body: JSON.stringify({text: 'Hello there.', speaker_wav: voices[0].voice_id, language: 'en'})});
  return {voice: voices[0].voice_id, settings: settings.status, audio: audio.status,
          type: audio.headers.get('content-type'), bytes: (await audio.arrayBuffer()).byteLength};
}
function play(url) {
  return new Promise((resolve) => {
    const player = document.getElementById('player');
    player.onended = () => resolve({ended: true, played: player.currentTime});
    player.onerror = () => resolve({ended: false, error: player.error && player.error.code});
    player.src = url;
    player.play().catch((e) => resolve({ended: false, error: String(e)}));
  });
}
</script></body></html>"""


@contextmanager
def page_server(page: str) -> Iterator[str]:
    """SillyTavern's stand-in: `page` served at / on localhost, another origin than the service's
    127.0.0.1 (and a loopback one, as SillyTavern on the same machine is: a browser lets such a
    page reach a loopback service)."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_sillytavern_page_on_another_origin_fetches_and_plays_the_stream(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The streaming <audio> element sends no key, so this one runs on an open service."""
    with page_server(SILLYTAVERN_PAGE % json.dumps(slider_settings())) as origin:
        settings = isolated_settings(tmp_path_factory.mktemp("xtts-api-open"), cors_origins=origin)
        with running_server(settings) as url, launched_chromium() as browser:
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{origin}/")
            endpoint = url + BASE
            # Older SillyTavern sends 'Bearer undefined' when no key is set.
            fetched = page.evaluate("([e, k]) => sillyTavern(e, k)", [endpoint, "undefined"])
            assert {key: fetched[key] for key in ("voice", "settings", "audio", "type")} == {
                "voice": VOICE,
                "settings": 200,
                "audio": 200,
                "type": "audio/wav",
            }
            assert fetched["bytes"] > 20_000
            query = f"text=Hello%20from%20the%20stream.&speaker_wav={VOICE}&language=en"
            played = page.evaluate("(u) => play(u)", f"{endpoint}/tts_stream/?{query}")
            assert played["ended"] is True and played["played"] > 0.8, played
            context.close()
