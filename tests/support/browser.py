"""A real browser for tests: Playwright driving the system's Chromium (Debian ``chromium``).

Why the system browser: this machine reaches no browser-download host, so Playwright's own
``playwright install`` cannot work; ``executable_path`` points it at /usr/bin/chromium.
Why these flags: as root Chromium needs ``--no-sandbox``; without the background-networking
flags it keeps trying hosts this closed network refuses.

When the browser or the package is missing, :func:`browser_or_skip` skips with a loud
reason naming the install commands (``.ci/run`` installs both; see README "Tests").

Screenshots go to :func:`screenshot_dir` -- ``test-output/screenshots/`` in the repository
(git-ignored) unless ``SERVEBENCH_SCREENSHOTS`` names another folder -- so a person can
look at them after the run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import REPO as REPO_ROOT

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
)
INSTALL_HINT = "apt-get install -y chromium && pip install -e '.[test]' (brings playwright)"

#: A laptop-sized viewport (the issue asks that reports read well at laptop width).
LAPTOP_VIEWPORT = {"width": 1366, "height": 768}


def _executable(path: str) -> bool:
    return Path(path).is_file() and os.access(path, os.X_OK)


def chromium_path() -> str | None:
    """The system Chromium executable, or None.

    ``SERVEBENCH_CHROMIUM``, when set, is the only candidate: a path that is not an
    executable gives None (no fallback), so ``SERVEBENCH_CHROMIUM=/nonexistent`` shows
    what a machine without a browser sees. Unset: the Debian paths, then ``PATH``.
    """
    env = os.environ.get("SERVEBENCH_CHROMIUM")
    if env is not None:
        return env if env and _executable(env) else None
    for candidate in CHROMIUM_CANDIDATES:
        if _executable(candidate):
            return candidate
    return shutil.which("chromium")


def screenshot_dir() -> Path:
    """Where browser tests write their screenshots (created)."""
    path = Path(os.environ.get("SERVEBENCH_SCREENSHOTS", REPO_ROOT / "test-output" / "screenshots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class PageLog:
    """What a page did that a test should look at: console errors, failed and external requests."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def external_requests(self, allowed_prefixes: tuple[str, ...]) -> list[str]:
        """Requests to anything but ``allowed_prefixes`` (data: and about: URLs are local)."""
        local = ("data:", "about:", "blob:") + allowed_prefixes
        return [u for u in self.requests if not u.startswith(local)]


def watch(page: Any) -> PageLog:
    """Attach listeners to ``page`` that fill a :class:`PageLog`."""
    log = PageLog()
    page.on("console", lambda m: log.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: log.page_errors.append(str(e)))
    page.on("requestfailed", lambda r: log.failed_requests.append(f"{r.url} ({r.failure})"))
    page.on("request", lambda r: log.requests.append(r.url))
    return log


@contextmanager
def browser_or_skip() -> Iterator[Any]:
    """A launched headless Chromium (Playwright ``Browser``); skips loudly if unavailable."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(f"BROWSER TESTS SKIPPED: the playwright package is not installed ({INSTALL_HINT})")
    exe = chromium_path()
    if exe is None:
        env = os.environ.get("SERVEBENCH_CHROMIUM")
        where = (
            f"SERVEBENCH_CHROMIUM={env!r} is not an executable"
            if env is not None
            else (f"no system Chromium at {' or '.join(CHROMIUM_CANDIDATES)} or on PATH")
        )
        pytest.skip(f"BROWSER TESTS SKIPPED: {where} ({INSTALL_HINT})")
    with sync_playwright() as pw:
        # A plain launch gets a new empty profile from Playwright (it refuses --user-data-dir).
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=list(CHROMIUM_FLAGS), timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()
