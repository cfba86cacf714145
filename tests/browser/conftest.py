"""A real headless Chromium (Debian's `chromium`, driven by Playwright) against the console
of the stack running in this process. Every page fails its test on a console error or an
uncaught exception."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from tests.conftest import Running, system_tool


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = system_tool("chromium", "chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox"], headless=True
        )
        yield browser
        await browser.close()


class Console:
    """A tab on the console, and what went wrong in it."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        self.refusals: set[int] = set()  # statuses the test provokes (the browser logs them)
        self.network_errors: set[str] = set()  # net::ERR_… the test provokes
        self.dialogs: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

        async def dismiss(dialog: Any) -> None:
            self.dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", dismiss)

    def _console(self, message: ConsoleMessage) -> None:
        refused = [f"status of {s} " for s in self.refusals] + list(self.network_errors)
        if message.type == "error" and not any(r in message.text for r in refused):
            self.errors.append(f"console: {message.text} at {message.location.get('url')}")

    async def open(self, hash_path: str = "") -> None:
        await self.page.goto(f"{self.base}/console/{hash_path}")

    async def sign_in(self, token: str) -> None:
        await self.open()
        await self.page.get_by_label("API key").fill(token)
        await self.page.get_by_role("button", name="Sign in").click()
        await self.page.locator("#who").wait_for(state="visible")

    async def serious_violations(self) -> list[str]:
        """axe-core's findings of serious or critical impact on the page as it is now."""
        results = await Axe().run(self.page)
        return [
            f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes)"
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]


@pytest.fixture
async def console(browser: Browser, services: Running) -> AsyncIterator[Console]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    tab = Console(page, services.api)
    yield tab
    await context.close()
    assert tab.errors == [], tab.errors
