"""`make screenshots`: the console's five screens as PNGs in docs/screenshots/, taken in
headless Chromium on a stack of its own holding realistic data: clean and bad imports, a
validation with bad cells, a live import, a verification with findings, a backup and a
rolled-back import."""

from __future__ import annotations

import asyncio
import csv
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from playwright.async_api import Page, async_playwright

from tidegate.sample_data import HEADER, TABLE_SQL, rows
from tidegate.stack import Stack

TABLE = "public.customers"
API = "/api/v1/database"
FINAL = {"completed", "completed_with_errors", "failed", "cancelled", "rolled_back"}


def _csv(data: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(data)
    return out.getvalue().encode()


class Seeder:
    """The data behind the pictures, made through the API like any client's."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self.http.request(method, path, **kwargs) as answer:
            body = await answer.json(content_type=None)
            if answer.status >= 400:
                raise RuntimeError(f"{method} {path}: {answer.status} {body}")
            return body

    async def imported(self, data: bytes, filename: str, **params: str) -> dict[str, Any]:
        form = aiohttp.FormData()
        form.add_field("file", data, filename=filename, content_type="text/csv")
        imp = await self.call("POST", f"{API}/import", params={"table": TABLE, **params}, data=form)
        return await self.final(imp["links"]["self"])

    async def final(self, url: str, done: set[str] = FINAL) -> dict[str, Any]:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            body: dict[str, Any] = await self.call("GET", url)
            if body["status"] in done:
                return body
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{url} not final")


async def seed(stack: Stack, admin: str) -> tuple[str, str]:
    """(a key for the browser, the id of the import with errors)."""
    conn = await asyncpg.connect(stack.database_url)
    await conn.execute(TABLE_SQL.format(table=TABLE))
    async with aiohttp.ClientSession(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {admin}"}
    ) as http:
        key = await Seeder(http).call(
            "POST",
            "/api/v1/keys",
            json={
                "name": "Dana (data manager)",
                "role": "admin",
                "requests_per_minute": 10_000,
                "concurrent_imports": 10,
            },
        )
    async with aiohttp.ClientSession(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {key['key']}"}
    ) as http:
        s = Seeder(http)
        await s.imported(_csv(list(rows(2000))), "crm-export-2024.csv")
        bad = await s.imported(
            _csv(list(rows(1000, start_id=2001, bad_every=40))), "webshop-signups.csv"
        )
        risky = await s.imported(_csv(list(rows(300, start_id=5001))), "partner-feed.csv")
        await conn.execute("UPDATE public.customers SET email = 'changed@by.hand' WHERE id = 17")
        verification = await s.call("POST", f"{API}/verifications", json={"tables": [TABLE]})
        await s.final(verification["links"]["self"])
        backup = await s.call(
            "POST", f"{API}/backups", json={"tables": [TABLE], "reason": "nightly"}
        )
        await s.final(backup["links"]["self"], {"completed", "failed"})
        rollback = await s.call("POST", f"{API}/imports/{risky['id']}/rollback")
        await s.final(rollback["links"]["self"], {"completed", "failed"})
    await conn.close()
    return key["key"], str(bad["id"])


async def shoot(stack: Stack, token: str, bad_import: str, out: Path) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"]
        )
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(f"{stack.api_url}/console/")
        await page.get_by_label("API key").fill(token)
        await page.get_by_role("button", name="Sign in").click()
        await page.locator("#who").wait_for()
        await validation(page, out)
        await progress(page, stack, token, out)
        await page.get_by_role("link", name="Verification").click()
        await page.locator("section[data-table] .metrics").first.wait_for()
        await page.screenshot(path=out / "3-verification.png", full_page=True)
        await page.goto(f"{stack.api_url}/console/#/troubleshoot/{bad_import}")
        await page.locator("#trouble-errors").wait_for()
        await page.get_by_label("Key: id").fill("2041")
        await page.get_by_role("button", name="Look up").click()
        await page.locator("#record-current").wait_for()
        await page.locator("#status-instances").wait_for()
        await page.screenshot(path=out / "4-troubleshooting.png", full_page=True)
        await page.get_by_role("link", name="Recovery").click()
        await page.locator(f"button[data-rollback='{bad_import}']").click()
        await page.get_by_role("dialog").wait_for()
        await page.screenshot(path=out / "5-recovery.png", full_page=True)
        await browser.close()


async def validation(page: Page, out: Path) -> None:
    data = list(rows(40, start_id=9001, bad_every=7))
    data[3][1] = "<script>alert('hi')</script>"
    await page.get_by_label("Target table").select_option(TABLE)
    await page.get_by_label("CSV file").set_input_files(
        files={"name": "new-customers.csv", "mimeType": "text/csv", "buffer": _csv(data)}
    )
    await page.get_by_role("button", name="Validate").click()
    await page.locator("#error-grid td.bad").first.wait_for()
    await page.locator("#error-grid td.bad").first.focus()
    await page.screenshot(path=out / "1-validation.png", full_page=True)


async def progress(page: Page, stack: Stack, token: str, out: Path) -> None:
    """The list with an import caught half way."""
    await page.get_by_role("link", name="Imports").click()
    await page.locator("#imports tbody tr").first.wait_for()
    form = aiohttp.FormData()
    form.add_field("file", _csv(list(rows(9000, start_id=20001))), filename="q4-migration.csv")
    async with (
        aiohttp.ClientSession(
            base_url=stack.api_url, headers={"Authorization": f"Bearer {token}"}
        ) as http,
        http.post(f"{API}/import", params={"table": TABLE, "chunk_size": "100"}, data=form) as a,
    ):
        imp = await a.json()
    bar = f"tr[data-import='{imp['id']}'] progress"
    await page.wait_for_function(
        "bar => (document.querySelector(bar)?.value ?? 0) >= 30", arg=bar, timeout=60_000
    )
    await page.screenshot(path=out / "2-import-progress.png", full_page=True)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tidegate-screenshots-") as home:
        stack = Stack(Path(home))
        stack.start()
        try:
            assert stack.first_admin_key is not None
            token, bad = asyncio.run(seed(stack, stack.first_admin_key))
            asyncio.run(shoot(stack, token, bad, out))
        finally:
            stack.stop()
    print(f"wrote {', '.join(sorted(p.name for p in out.glob('*.png')))} in {out}")  # noqa: T201


if __name__ == "__main__":
    main()
