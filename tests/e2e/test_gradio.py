"""The optional Gradio interface at /gradio, against real servers.

Called the way Gradio users call it (gradio_client, over the queue), and loaded in a real browser
to check it is usable offline: every request the page makes stays on the service.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sentiric_tts.app import create_app
from sentiric_tts.doors.gradio import ui as gradio_ui
from tests.support.audio import parse_wav, to_16k, word_error_rate
from tests.support.browser import launched_chromium
from tests.support.server import isolated_settings, running_server

gradio_client = pytest.importorskip("gradio_client", reason="gradio is not installed (the gradio extra)")
AppError = gradio_client.exceptions.AppError

VOICE = "en_US-joe-medium"
# Whisper tiny hears this one right in every rendering tried (Piper samples its noise afresh each
# time; "The quick brown fox ..." lost "quick" in 1 of 10).
TEXT = "Hello there, the weather is fine today."


def gradio(base_url: str, downloads: Path, **kwargs: Any) -> Any:
    return gradio_client.Client(f"{base_url}/gradio/", verbose=False, download_files=str(downloads), **kwargs)


@pytest.fixture()
def ui(piper_server: str, tmp_path: Path) -> Any:
    return gradio(piper_server, tmp_path)


def test_speak_returns_intelligible_wav_and_timings(ui: Any, transcribe: Any) -> None:
    path, timing = ui.predict(TEXT, VOICE, "", 1.0, api_name="/speak")
    rate, channels, samples = parse_wav(Path(path).read_bytes())
    assert (rate, channels) == (22050, 1)
    assert samples.size > rate  # more than a second of speech
    heard = transcribe(to_16k(samples, rate))
    assert word_error_rate(TEXT, heard) <= 0.10, heard
    assert "Time to first audio" in timing and "RTF" in timing
    assert f"voice {VOICE}, en, 22050 Hz" in timing


def test_speed_and_ssml_go_through_the_pipeline(ui: Any) -> None:
    normal, _ = ui.predict(TEXT, VOICE, "en", 1.0, api_name="/speak")
    fast, _ = ui.predict(TEXT, VOICE, "en", 2.0, api_name="/speak")
    assert parse_wav(Path(fast).read_bytes())[2].size < 0.75 * parse_wav(Path(normal).read_bytes())[2].size
    ssml = '<speak>Hello.<break time="1500ms"/>Goodbye.</speak>'
    plain, _ = ui.predict("Hello. Goodbye.", VOICE, "", 1.0, api_name="/speak")
    paused, _ = ui.predict(ssml, VOICE, "", 1.0, api_name="/speak")
    rate, _, paused_samples = parse_wav(Path(paused).read_bytes())
    assert paused_samples.size - parse_wav(Path(plain).read_bytes())[2].size > 0.8 * rate


@pytest.mark.parametrize(
    ("text", "voice", "language", "speed", "message"),
    [
        ("", VOICE, "", 1.0, "The text is empty: send at least one word to speak."),
        ("Hello.", "nobody", "", 1.0, "Unknown voice 'nobody'"),
        ("Hello.", VOICE, "tlh", 1.0, "Language 'tlh' is not available"),
        ("Hello.", VOICE, "", 9.0, "greater than maximum value 4.0"),  # Gradio's own range check
    ],
)
def test_bad_input_shows_the_services_message(
    ui: Any, text: str, voice: str, language: str, speed: float, message: str
) -> None:
    with pytest.raises(AppError) as refused:
        ui.predict(text, voice, language, speed, api_name="/speak")
    assert message in str(refused.value)
    assert "Traceback" not in str(refused.value)


def test_cloning_on_piper_says_it_needs_xtts(ui: Any, reference_wav: Path) -> None:
    clip = gradio_client.handle_file(str(reference_wav))
    with pytest.raises(AppError, match="Voice cloning needs the XTTS engine"):
        ui.predict([clip], "Hello there.", "", 1.0, api_name="/clone")
    with pytest.raises(AppError, match="Upload 1 to 5 reference clips"):
        ui.predict([], "Hello there.", "", 1.0, api_name="/clone")


def test_with_api_keys_gradio_needs_a_key_and_limits_apply(tmp_path: Path) -> None:
    settings = isolated_settings(
        tmp_path, api_keys="gradio-secret", rate_limit_per_minute=1, rate_limit_burst=1
    )
    with running_server(settings) as url:
        assert httpx.get(f"{url}/gradio/config").status_code == 401
        page = httpx.get(f"{url}/gradio/")
        assert "gradio-secret" not in page.text
        with pytest.raises(Exception, match=r"(?i)login|credentials|auth"):
            gradio(url, tmp_path)  # no credentials: the client cannot even read the interface
        with pytest.raises(Exception, match=r"(?i)credentials|login|auth"):
            gradio(url, tmp_path, auth=("someone", "wrong-key"))
        ui = gradio(url, tmp_path, auth=("someone", "gradio-secret"))
        path, _ = ui.predict("Hello.", VOICE, "", 1.0, api_name="/speak")
        assert parse_wav(Path(path).read_bytes())[2].size > 0
        # The key's own rate limit applies to what it asks through Gradio.
        with pytest.raises(AppError, match="Rate limit reached"):
            ui.predict("Hello again.", VOICE, "", 1.0, api_name="/speak")


def _gradio_mounted(app: Any) -> bool:
    return any(getattr(route, "path", None) == gradio_ui.GRADIO_PATH for route in app.routes)


def test_gradio_can_be_switched_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=gradio_ui.__name__):
        app = create_app(isolated_settings(tmp_path, gradio_enabled=False))
    assert not _gradio_mounted(app)
    assert "/gradio is off (TTS_GRADIO_ENABLED=false)" in caplog.text
    assert _gradio_mounted(create_app(isolated_settings(tmp_path)))


def test_without_gradio_installed_the_service_still_builds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What import_gradio sees on a host without the extra: no gradio package to find.
    real_find_spec = gradio_ui.importlib.util.find_spec
    monkeypatch.setattr(
        gradio_ui.importlib.util,
        "find_spec",
        lambda name, *args: None if name == "gradio" else real_find_spec(name, *args),
    )
    with caplog.at_level(logging.INFO, logger=gradio_ui.__name__):
        app = create_app(isolated_settings(tmp_path))
    assert not _gradio_mounted(app)
    assert "/gradio is off: gradio is not installed" in caplog.text
    assert "/api/tts" in app.openapi()["paths"]


# --- in a real browser ---


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as chromium:
        yield chromium


def test_the_page_works_offline_in_a_browser(browser: Any, piper_server: str) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        page.goto(f"{piper_server}/gradio/")
        # The catalogue arrives on load: the engine line, and the clone tab's note on Piper.
        page.get_by_text("Engine piper on cpu").wait_for(timeout=60_000)
        page.get_by_label("Text or SSML").first.fill("Hello from the browser.")
        page.get_by_role("button", name="Speak", exact=True).click()
        page.get_by_text("Time to first audio").wait_for(timeout=60_000)
        # The player and its download link: the WAV the service made, fetched from the service.
        download = page.locator("a[download]").first
        download.wait_for(timeout=30_000)
        href = download.get_attribute("href") or ""
        assert href.startswith(f"{piper_server}/gradio/")
        rate, _, samples = parse_wav(httpx.get(href, timeout=30).content)
        assert samples.size > rate / 2
        assert page.locator("audio[src]").count() >= 1
        page.get_by_role("tab", name="Clone a voice").click()
        page.get_by_text("Voice cloning needs the XTTS engine").wait_for(timeout=30_000)
        assert page.get_by_role("button", name="Speak in this voice").count() == 0
    finally:
        context.close()
    offsite = [url for url in requested if not url.startswith((piper_server, "data:", "blob:"))]
    assert requested and offsite == []


# --- cloning, on a tiny random XTTS checkpoint ---


def test_clone_on_xtts_speaks_in_a_cloned_voice(
    xtts_dir: Path, reference_wav: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from tests.service.test_xtts_http import xtts_settings

    with running_server(xtts_settings(tmp_path_factory.mktemp("gradio-xtts"), xtts_dir)) as url:
        ui = gradio(url, tmp_path)
        clip = gradio_client.handle_file(str(reference_wav))
        path, timing = ui.predict([clip], "Hello there.", "en", 1.0, api_name="/clone")
        rate, channels, samples = parse_wav(Path(path).read_bytes())
        assert (rate, channels) == (24000, 1) and samples.size > 0
        assert "voice clone-" in timing  # spoken with the voice conditioned on the clip
        with pytest.raises(AppError, match="Too many reference clips"):
            ui.predict([clip] * 6, "Hello there.", "en", 1.0, api_name="/clone")
