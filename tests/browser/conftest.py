"""Chromium for the dashboard tests: Debian's package driven by Playwright for Python, one browser per test
session and a fresh context per test. Every request to another host is refused and recorded, every console
error and uncaught exception recorded; a test fails if either happened.

Outside CI the tests skip, saying why, when Chromium is missing; on CI they must run.
"""

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ON_CI
from tests.support.waiting import PATIENCE_S

WAIT_MS = PATIENCE_S * 1000  # how long a page action or an expectation may take on a busy machine

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Where screenshots go: docs/images when RAMPUP_SCREENSHOTS names it, else the test's temporary folder.
SCREENSHOTS = os.environ.get("RAMPUP_SCREENSHOTS")


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing: apt-get install -y chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install -e '.[test]'"
    return None


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """One browser for the module. Not for the session: Playwright's sync API keeps an asyncio loop running
    in this thread while it lives, and every later test on the worker that calls asyncio.run() would fail."""
    reason = _missing()
    if reason and ON_CI:
        pytest.fail(f"{reason}; on CI the browser tests must run")
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@dataclass
class Watch:
    """What a page did that it should not: requests elsewhere, console errors, uncaught exceptions."""

    base: str
    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    expected_errors: list[str] = field(default_factory=list)  # substrings a test expects (a 403 it provoked)

    def check(self) -> None:
        unexpected = [e for e in self.errors if not any(x in e for x in self.expected_errors)]
        assert not self.foreign, f"requests to other hosts: {self.foreign}"
        assert not unexpected, f"console errors: {unexpected}"


@pytest.fixture
def open_context(chromium: object, tmp_path: Path) -> Iterator[Callable[..., tuple[object, Watch]]]:
    """base URL → (a new browser context, its Watch). The context's time zone is not UTC, so the tests see the
    pages convert times."""
    made: list[tuple[object, Watch]] = []

    def make(base: str, **options: object) -> tuple[object, Watch]:
        from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Route

        assert isinstance(chromium, Browser)
        context: BrowserContext = chromium.new_context(
            **{"timezone_id": "Asia/Kolkata", "viewport": {"width": 1280, "height": 900}, **options}  # type: ignore[arg-type]
        )
        context.set_default_timeout(WAIT_MS)
        watch = Watch(base)

        def route(r: Route) -> None:
            if r.request.url.startswith(base + "/"):
                r.continue_()
            else:
                watch.foreign.append(r.request.url)
                r.abort()

        context.route("**/*", route)

        def console(message: ConsoleMessage) -> None:
            if message.type == "error":
                watch.errors.append(message.text)

        context.on("console", console)
        context.on("weberror", lambda e: watch.errors.append(str(e.error)))
        made.append((context, watch))
        return context, watch

    yield make
    for context, watch in made:
        context.close()  # type: ignore[attr-defined]
        watch.check()


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[[object, str], Path]:
    def take(page: object, name: str) -> Path:
        folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
        return path

    return take
