"""Browser tests: Debian's Chromium, driven by Playwright, against a real server on a loopback port.

No browser is ever downloaded: Playwright launches /usr/bin/chromium (scripts/test installs it). Every
page fails its test on an uncaught exception or a console error (a test that expects the browser to
log a refused connection, say while the server restarts, lists the message it allows). Each step can
be saved as a screenshot under test-artifacts/browser/ (gitignored).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Generator, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright, expect

from server.config import Config
from tests.support import API_KEY, Running, agent, make_config, voice_queue

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"

expect.set_options(timeout=10_000)
CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether the test itself failed: then what its pages log afterwards is only noise."""
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


def desk_config(**server: Any) -> Config:
    """A small center for the desktops: a voice queue with transcription and required dispositions,
    chat, email, a second voice queue nobody serves; agents ann, ben, cat; supervisor sue."""
    return make_config(
        [
            voice_queue(
                "calls",
                name="Calls",
                ring_timeout_s=30,
                wrap_up_s=120,
                transcription=True,
                dispositions=[{"code": "resolved", "label": "Resolved"}, {"code": "callback", "label": "Call back"}],
                disposition_required=True,
            ),
            {
                "id": "chat",
                "name": "Chat",
                "channel": "chat",
                "acceptance": "auto",
                "wrap_up_s": 60,
                "dispositions": [{"code": "sale", "label": "Sale"}],
            },
            {
                "id": "mail",
                "name": "Mail",
                "channel": "email",
                "dispositions": [{"code": "answered", "label": "Answered"}],
            },
            voice_queue("billing", name="Billing", ring_timeout_s=30),
        ],
        [
            agent("ann", "calls", "chat", "mail"),
            agent("ben", "calls", "chat", "mail"),
            agent("cat", "billing"),
        ],
        server={"grace_s": 30, **server},
        supervisors=[{"id": "sue", "name": "Sue Visor"}],
        address_book=[
            {
                "id": "c-1001",
                "name": "Jeanne Dupont",
                "phone": "+33 6 12 34 56 78",
                "email": "jeanne.dupont@example.com",
                "fields": {"tier": "gold", "account": "ACC-48213"},
            }
        ],
    )


def api_client(live: Running) -> httpx.AsyncClient:
    """The flows' side: the HTTP API with the API key."""
    return httpx.AsyncClient(base_url=live.http, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)


class Pages:
    """Opens pages for one test, collects their errors, and saves numbered screenshots."""

    def __init__(self, browser: Browser, test_name: str) -> None:
        self.browser = browser
        self.name = re.sub(r"[^A-Za-z0-9_-]+", "-", test_name).strip("-")
        self.errors: list[str] = []
        self.allowed: list[re.Pattern[str]] = []
        self.step = 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for old in ARTIFACTS.glob(f"{self.name}-*.png"):
            old.unlink()

    def allow(self, patterns: Iterable[str]) -> None:
        """Console errors matching these patterns are expected (the browser's own network messages)."""
        self.allowed.extend(re.compile(p) for p in patterns)

    async def open(self, url: str) -> Page:
        context = await self.browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", self._on_console)
        await page.goto(url)
        return page

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        text = message.text
        if any(p.search(text) for p in self.allowed):
            return
        self.errors.append(f"console error: {text}")

    async def shot(self, page: Page, label: str) -> None:
        self.step += 1
        path = ARTIFACTS / f"{self.name}-{self.step:02d}-{label}.png"
        await page.screenshot(path=str(path), full_page=True, animations="disabled")  # what it settles on

    def assert_clean(self) -> None:
        assert not self.errors, "the page reported errors:\n" + "\n".join(self.errors)

    async def finish(self) -> None:
        """Close the pages while the server still runs (a page left open would try to reconnect after the
        server stops, and the browser would log that), then check that they reported no error."""
        await self.close()
        self.assert_clean()

    async def close(self) -> None:
        for context in self.browser.contexts:
            with contextlib.suppress(Error):
                await context.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.fail("Chromium is not installed at /usr/bin/chromium: run scripts/test, which installs it")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def pages(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Pages]:
    opened = Pages(browser, request.node.name)
    yield opened
    await opened.close()
    if not request.node.stash.get(CALL_FAILED, False):
        opened.assert_clean()
