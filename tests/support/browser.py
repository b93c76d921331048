"""Headless Chromium for the dashboard tests, driven by Playwright, and a page that records errors.

Debian's Chromium is used as installed (there is no `playwright install` download here). Where it
is missing the tests skip, unless SENTIRIC_REQUIRE_BROWSER=1 (set by CI) makes that a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",  # grant the microphone without a prompt
    "--use-fake-device-for-media-stream",  # a fake microphone (a beep) stands in for a person
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
]
RENDER_TIMEOUT_MS = 120_000


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@contextmanager
def launched_chromium() -> Iterator[Any]:
    """A headless Chromium (playwright Browser); skips, or fails under SENTIRIC_REQUIRE_BROWSER=1."""
    executable = chromium_path()
    if executable is None:
        message = "Chromium is not installed (apt-get install chromium)"
        if os.environ.get("SENTIRIC_REQUIRE_BROWSER") == "1":
            pytest.fail(message + "; SENTIRIC_REQUIRE_BROWSER=1 forbids skipping the browser tests")
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class DashboardPage:
    """The dashboard in a fresh browser context; console errors and page exceptions are kept."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(base_url + "/")

    def wait(self, predicate: str, timeout: float = RENDER_TIMEOUT_MS) -> None:
        # A function, not a bare expression: the page's CSP forbids evaluating strings.
        self.page.wait_for_function(predicate, timeout=timeout)

    def wait_ready(self) -> None:
        self.wait("() => window.sentiricDashboard && window.sentiricDashboard.ready")

    def probe(self) -> dict[str, Any]:
        """The page's counters (window.sentiricDashboard): renders, decoded samples, levels."""
        result: dict[str, Any] = self.page.evaluate(
            "() => JSON.parse(JSON.stringify(window.sentiricDashboard))"
        )
        return result

    def speak_and_wait(self) -> dict[str, Any]:
        before = self.probe()["renders"]
        self.page.click("#speak")
        self.wait(f"() => window.sentiricDashboard.renders > {before}")
        return self.probe()

    def close(self) -> None:
        self.context.close()
