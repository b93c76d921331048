"""Cloning and the voice library in the dashboard, in a real browser, on a tiny XTTS server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.test_xtts_http import xtts_settings
from tests.support.browser import DashboardPage, launched_chromium
from tests.support.server import running_server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def xtts_url(xtts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(xtts_settings(tmp_path_factory.mktemp("dashboard-xtts"), xtts_dir)) as url:
        yield url


@pytest.fixture()
def studio(browser: Any, xtts_url: str) -> Iterator[DashboardPage]:
    page = DashboardPage(browser, xtts_url)
    page.wait_ready()
    yield page
    page.close()


def library_voices(url: str) -> list[dict]:  # type: ignore[type-arg]
    listing = httpx.get(f"{url}/api/voices", timeout=30).json()
    return [voice for voice in listing["voices"] if voice["kind"] == "library"]


def test_clone_save_rename_use_and_delete(studio: DashboardPage, xtts_url: str, reference_wav: Path) -> None:
    page = studio.page
    # XTTS: cloning and sampling are available.
    assert page.is_hidden("#clone-unavailable")
    assert page.is_enabled("#clone-preview")
    assert page.is_enabled("#temperature")

    page.set_input_files("#clone-files", str(reference_wav))
    assert "reference.wav" in page.inner_text("#clone-clips")

    # Hear the clone (streamed, like the composer's default).
    before = studio.probe()["renders"]
    page.click("#clone-preview")
    studio.wait(f"() => window.sentiricDashboard.renders > {before}")
    render = studio.probe()["lastRender"]
    assert render["kind"] == "clone"
    assert render["voice"].startswith("clone-")
    assert studio.probe()["audio"]["decodedSamples"] > 0
    assert page.is_hidden("#clone-error")

    # Save it to the library: the page lists it and selects it in the composer.
    page.fill("#clone-name", "Narrator")
    page.fill("#clone-description", "Made in the dashboard test")
    page.click("#clone-save")
    page.wait_for_selector("#clone-message:has-text('Saved')")
    saved = library_voices(xtts_url)
    assert [voice["name"] for voice in saved] == ["Narrator"]
    voice_id = saved[0]["id"]
    item = page.locator(f"#library-list li[data-voice-id='{voice_id}']")
    assert "Narrator" in item.inner_text()
    assert page.input_value("#voice") == voice_id

    # Its sample plays.
    before_frames = studio.probe()["audio"]["framesWithSignal"]
    item.locator("button", has_text="Play").first.click()
    studio.wait(f"() => window.sentiricDashboard.audio.framesWithSignal > {before_frames}", 30_000)

    # Speak with it from the composer.
    page.fill("#text", "Now in the saved voice.")
    probe = studio.speak_and_wait()
    assert probe["lastRender"]["voice"] == voice_id

    # Rename.
    page.click("button[aria-label='Rename Narrator']")
    page.fill("input[aria-label='New name for Narrator']", "Storyteller")
    page.press("input[aria-label='New name for Narrator']", "Enter")
    page.wait_for_selector(
        f"#library-list li[data-voice-id='{voice_id}'] .voice-name:has-text('Storyteller')"
    )
    assert [voice["name"] for voice in library_voices(xtts_url)] == ["Storyteller"]

    # Delete, after confirming.
    page.click("button[aria-label='Delete Storyteller']")
    page.click("#confirm-ok")
    page.wait_for_selector(f"#library-list li[data-voice-id='{voice_id}']", state="detached")
    assert library_voices(xtts_url) == []
    assert page.is_visible("#library-empty")
    assert studio.errors == []


def test_a_clip_recorded_from_the_microphone_joins_the_clips(studio: DashboardPage) -> None:
    page = studio.page
    page.click("#clone-record")  # Chromium's fake microphone (a beep) stands in for a person
    page.wait_for_selector("#clone-record[aria-pressed='true']")
    page.wait_for_selector("#clone-record-state:has-text('Recording… 1 s')")
    page.click("#clone-record")
    page.wait_for_selector("#clone-clips li")
    assert "recording-1." in page.inner_text("#clone-clips")
    page.click("#clone-clips button:has-text('Remove')")
    assert page.locator("#clone-clips li").count() == 0


def test_clone_and_save_errors_show_their_message(studio: DashboardPage) -> None:
    page = studio.page
    page.click("#clone-save")
    page.wait_for_selector("#clone-error:not([hidden])")
    assert "reference clip" in page.inner_text("#clone-error")
    # A clip that is not audio: the API's own message.
    page.set_input_files(
        "#clone-files", files=[{"name": "notes.wav", "mimeType": "audio/wav", "buffer": b"not audio at all"}]
    )
    page.click("#clone-preview")
    page.wait_for_selector("#clone-error:has-text('notes.wav')")
    assert page.inner_text("#clone-error").strip() != "error"
