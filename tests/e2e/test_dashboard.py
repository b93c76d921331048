"""The dashboard at / in a real browser (Chromium via Playwright) against real servers.

Piper for speech, file and stream, and a server with API keys for the key field (cloning and the
voice library: test_dashboard_library.py). The page exposes counters on `window.sentiricDashboard` that show
what reached its audio graph (decoded samples, scheduled buffers, analyser level).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.audio import parse_wav
from tests.support.browser import DashboardPage, launched_chromium
from tests.support.server import isolated_settings, running_server

OUTPUT_DIR = Path(__file__).resolve().parents[2] / "test-output"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture()
def dashboard(browser: Any, piper_server: str) -> Iterator[DashboardPage]:
    page = DashboardPage(browser, piper_server)
    page.wait_ready()
    yield page
    page.close()


def test_page_and_assets_are_served_from_the_service(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    # Nothing may come from elsewhere: the browser enforces it.
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text
    for asset in ("/web/js/main.js", "/web/css/dashboard.css", "/web/favicon.svg"):
        assert client.get(asset).status_code == 200, asset
    missing = client.get("/web/js/nothing.js")
    assert missing.status_code == 404
    assert "error" in missing.json()
    assert client.get("/docs").status_code == 200
    assert "/" not in client.get("/openapi.json").json()["paths"]


def test_the_page_loads_clean_and_shows_the_service(dashboard: DashboardPage) -> None:
    page = dashboard.page
    dashboard.wait("() => document.getElementById('status-engine').textContent === 'piper'", 30_000)
    assert page.inner_text("#status-ready") == "Ready"
    assert page.inner_text("#status-device") == "cpu"
    assert "/" in page.inner_text("#status-queue")
    voices = page.eval_on_selector_all("#voice option", "els => els.map(e => e.value)")
    assert "en_US-joe-medium" in voices
    assert page.input_value("#language") == "en"
    formats = page.eval_on_selector_all("#format option", "els => els.map(e => e.value)")
    assert {"wav", "pcm", "mp3", "mulaw"} <= set(formats)
    # Piper: sampling is XTTS only and cloning is unavailable, and the page says so.
    assert page.is_disabled("#temperature")
    assert "XTTS only" in (page.text_content("#sampling-note") or "")
    assert page.is_visible("#clone-unavailable")
    assert "cannot clone" in page.inner_text("#clone-unavailable")
    assert page.is_disabled("#clone-preview")
    assert page.is_hidden("#download")  # nothing rendered yet
    assert page.is_hidden("#compose-error")
    # Every form control has a label.
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
            .map(e => e.id || e.name)"""
    )
    assert unlabeled == []
    OUTPUT_DIR.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT_DIR / "dashboard.png"), full_page=True)
    assert dashboard.errors == []


def test_streamed_render_plays_through_the_audio_graph(dashboard: DashboardPage) -> None:
    page = dashboard.page
    page.fill("#text", "Streaming starts with the first sentence. The second one follows it without a gap.")
    page.select_option("#sample-rate", "16000")
    probe = dashboard.speak_and_wait()
    audio = probe["audio"]
    render = probe["lastRender"]
    assert render["mode"] == "stream"
    assert render["sampleRate"] == 16000
    assert audio["streams"] == 1
    assert audio["scheduledBuffers"] >= 1
    # Every decoded sample was scheduled, and the metrics speak of the same audio.
    assert audio["decodedSamples"] == round(render["audioSeconds"] * 16000)
    assert render["audioSeconds"] > 2.0
    assert 0 < render["ttfaMs"] <= render["totalMs"]
    for metric in ("#metric-ttfa", "#metric-total", "#metric-audio", "#metric-rtf"):
        assert page.inner_text(metric) not in ("", "–"), metric
    # The analyser saw the signal while it played.
    dashboard.wait("() => window.sentiricDashboard.audio.framesWithSignal > 0", 30_000)
    assert dashboard.probe()["audio"]["peakLevel"] > 0.01
    # The render is kept in the history, and downloads as a WAV of the same audio.
    assert page.locator("#history-list li").count() == 1
    with page.expect_download() as info:
        page.click("#history-list li >> text=Download")
    rate, channels, samples = parse_wav(Path(info.value.path()).read_bytes())
    assert (rate, channels) == (16000, 1)
    assert len(samples) == audio["decodedSamples"]
    assert dashboard.errors == []


def test_file_render_plays_and_downloads(dashboard: DashboardPage) -> None:
    page = dashboard.page
    page.check("#mode-file", force=True)
    page.select_option("#format", "mp3")
    page.fill("#text", "A whole file, played in the page.")
    probe = dashboard.speak_and_wait()
    render = probe["lastRender"]
    assert render["mode"] == "file"
    assert render["format"] == "mp3"
    assert render["audioSeconds"] > 0.5
    assert page.inner_text("#metric-rtf") not in ("", "–")
    dashboard.wait("() => window.sentiricDashboard.audio.framesWithSignal > 0", 30_000)
    duration = page.eval_on_selector("#player", "el => el.duration")
    assert duration > 0.5
    assert page.get_attribute("#download", "download").endswith(".mp3")
    assert dashboard.errors == []


def test_raw_telephony_audio_is_decoded_for_playback(dashboard: DashboardPage) -> None:
    page = dashboard.page
    page.check("#mode-file", force=True)
    page.select_option("#format", "mulaw")
    page.select_option("#sample-rate", "8000")
    page.fill("#text", "Telephone audio.")
    dashboard.speak_and_wait()
    # The browser cannot play raw G.711: the page decodes it to PCM and plays that.
    dashboard.wait("() => document.getElementById('player').duration > 0.3", 30_000)
    dashboard.wait("() => window.sentiricDashboard.audio.framesWithSignal > 0", 30_000)
    assert page.get_attribute("#download", "download").endswith(".ulaw")
    assert dashboard.errors == []


def test_the_history_survives_a_reload_and_replays(dashboard: DashboardPage, piper_server: str) -> None:
    page = dashboard.page
    page.fill("#text", "Keep this one.")
    dashboard.speak_and_wait()
    page.reload()
    dashboard.wait_ready()
    dashboard.wait("() => document.querySelectorAll('#history-list li').length > 0", 30_000)
    assert "Keep this one." in page.inner_text("#history-list")
    before = dashboard.probe()["audio"]["framesWithSignal"]
    page.locator("#history-list li").first.locator("text=Play").click()
    dashboard.wait(f"() => window.sentiricDashboard.audio.framesWithSignal > {before}", 30_000)
    assert page.inner_text("#metric-ttfa") not in ("", "–")


def test_every_ready_example_is_accepted_by_the_service(
    dashboard: DashboardPage, client: httpx.Client
) -> None:
    page = dashboard.page
    ids = [
        value
        for value in page.eval_on_selector_all("#example option", "els => els.map(e => e.value)")
        if value
    ]
    assert {"break", "prosody", "emphasis", "say-as", "sub", "p-s", "lang", "voice", "mark"} <= set(ids)
    for example in ids:
        page.select_option("#example", example)
        text = page.input_value("#text")
        plan = client.post("/api/tts/plan", json={"text": text, "voice": page.input_value("#voice")})
        assert plan.status_code == 200, (example, plan.text)
        assert any(item["type"] == "speech" for item in plan.json()["items"]), example


def test_an_api_error_shows_the_api_message(dashboard: DashboardPage, client: httpx.Client) -> None:
    page = dashboard.page
    expected = client.post("/api/tts", json={"text": "   "}).json()["error"]["message"]
    page.fill("#text", "   ")
    page.click("#speak")
    page.wait_for_selector("#compose-error:not([hidden])")
    assert expected in page.inner_text("#compose-error")
    page.fill("#text", "<speak><break time='1s'/>Broken")
    page.click("#speak")
    page.wait_for_selector("#compose-error:has-text('line')")
    assert page.inner_text("#compose-error") != "error"


def test_api_keys_the_page_opens_and_points_to_the_key_field(browser: Any, tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path, api_keys="right-key")
    with running_server(settings) as url:
        assert httpx.get(url + "/").status_code == 200
        assert httpx.get(url + "/web/js/main.js").status_code == 200
        assert httpx.get(url + "/api/config").status_code == 401
        page = DashboardPage(browser, url)
        try:
            tab = page.page
            tab.wait_for_selector("#compose-error:not([hidden])")
            assert "API key field" in tab.inner_text("#compose-error")
            assert "Missing or wrong API key" in tab.inner_text("#compose-error")
            assert tab.get_attribute("#api-key", "aria-invalid") == "true"
            page.wait(
                "() => document.getElementById('status-ready').textContent === 'API key needed'", 30_000
            )
            # A wrong key: still the API's message.
            tab.fill("#api-key", "wrong-key")
            tab.click("#key-form button")
            tab.wait_for_selector("#compose-error:has-text('Missing or wrong API key')")
            # The right key unlocks the page, and synthesis works with it.
            tab.fill("#api-key", "right-key")
            tab.click("#key-form button")
            page.wait_ready()
            assert tab.is_hidden("#compose-error")
            probe = page.speak_and_wait()
            assert probe["audio"]["decodedSamples"] > 0
        finally:
            page.close()
