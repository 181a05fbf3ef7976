"""Helpers of the browser tests: where Chromium is, how it is started, screenshots, signing in.

Playwright drives Debian's chromium (it downloads no browser here). Screenshots go to
``var/screenshots/`` (gitignored).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

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
