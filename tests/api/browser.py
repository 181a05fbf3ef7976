"""Real headless Chromium for the console tests, driven by Playwright (no browser download: Debian's chromium).

The browser tests skip, saying why, only when no Chromium can be had (``make test`` installs Debian's
chromium first when it runs as root with apt). Screenshots go to ``var/screenshots/`` (gitignored).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",  # the critical-alert sound plays without a click
]


def chromium_path() -> str | None:
    """Debian's chromium (or one on PATH), or None."""
    for candidate in (os.environ.get("WATCHPOST_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module (Playwright's sync API holds an event loop on the main thread while
    it runs, which other modules' ``asyncio.run`` must not meet)."""
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium at /usr/bin/chromium: install Debian's chromium (make test does so as root)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package (test extras) is missing")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """Pages in fresh browser contexts (no stored sign-in or language); each closed at the end."""
    contexts = []

    def make(width: int = 1440, height: int = 900, **options: Any) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height}, **options)
        contexts.append(context)
        page = context.new_page()
        page.errors = []  # type: ignore[attr-defined]
        page.on("pageerror", lambda error: page.errors.append(str(error)))  # type: ignore[attr-defined]
        return page

    yield make
    for context in contexts:
        context.close()


def screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    """Save a screenshot for review under var/screenshots/ and say where."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path}")
    return path


def sign_in(page: Any, url: str, username: str, password: str, *, lang: str = "en") -> None:
    """Open ``url``, choose the language, and sign in through the form."""
    page.goto(url)
    page.evaluate("lang => localStorage.setItem('wp.lang', lang)", lang)
    page.reload()
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#signin-form button[type=submit]")
