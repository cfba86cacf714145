"""The console sends a file as a resumable upload (tus-js-client): upload progress, a
network drop (Playwright's offline mode) waited out and resumed from what the gateway
kept, and a page reload after which the same file, chosen again, sends only the rest. The
import then lands once, equal to the file."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
from playwright.async_api import Route, expect

from tests.browser.conftest import Console
from tests.conftest import MakeKey, table_rows, typed
from tests.e2e.test_import_pipeline import as_csv
from tidegate.sample_data import rows

PART = 8 * 1024 * 1024  # the console's bytes per PATCH (js/resumable.js)
RECORDS = 10_000


def big_rows() -> list[list[str]]:
    """10,000 records of about 1.7 kB each: three PATCHes."""
    return [[*row[:8], f"note {row[0]} " + "x" * 1_700] for row in rows(RECORDS)]


async def test_an_upload_survives_a_network_drop_and_a_reload(
    console: Console, make_key: MakeKey, customers: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    page = console.page
    data = as_csv(big_rows()).encode()
    assert 2 * PART < len(data) < 3 * PART
    path = tmp_path / "big.csv"  # a file on disk: the same file after the reload
    path.write_bytes(data)

    # Every PATCH's Upload-Offset is noted; the first goes through, the next ones are held
    # until the test lets them go (so the drop and the reload come mid-upload).
    offsets: list[int] = []
    held: asyncio.Queue[Route] = asyncio.Queue()
    let_through = {"all": False}

    async def pace(route: Route) -> None:
        if route.request.method != "PATCH":
            await route.continue_()
            return
        offsets.append(int(route.request.headers["upload-offset"]))
        if len(offsets) == 1 or let_through["all"]:
            await route.continue_()
        else:
            await held.put(route)

    await page.route("**/api/v1/database/uploads/*", pace)
    token = await make_key("data_manager", tables=[customers])
    await console.sign_in(token)
    await page.get_by_label("Target table").select_option(customers)
    await page.get_by_label("CSV file").set_input_files(path)
    await page.get_by_role("button", name="Import", exact=True).click()

    # The first 8 MiB are in, the second PATCH is on its way: the network drops.
    second = await asyncio.wait_for(held.get(), 30)
    assert offsets == [0, PART]
    progress = page.locator("#upload-progress")
    await expect(progress).to_contain_text("%")
    assert int(await progress.locator("progress").get_attribute("value") or 0) >= PART
    console.network_errors.update(("net::ERR_INTERNET_DISCONNECTED", "net::ERR_ABORTED"))
    await page.context.set_offline(True)
    await second.abort("internetdisconnected")
    await expect(page.locator("#upload-note")).to_contain_text("network is down")
    upload_id = await db.fetchval(
        "SELECT id FROM tidegate.uploads WHERE target_table = $1", customers
    )
    assert (
        await db.fetchval("SELECT received FROM tidegate.uploads WHERE id = $1", upload_id) == PART
    )  # the gateway kept the first part

    # Back online: the upload goes on by itself, from the gateway's offset.
    await page.context.set_offline(False)
    third = await asyncio.wait_for(held.get(), 30)
    assert offsets == [0, PART, PART]
    await expect(page.locator("#upload-note")).to_contain_text("network is back")

    # The tab is reloaded mid-upload: the upload is remembered in the tab.
    await third.abort("aborted")
    await page.reload()
    unfinished = page.locator("#unfinished")
    await expect(unfinished).to_contain_text(f"big.csv → {customers}")
    await expect(unfinished).to_contain_text("% stored")
    assert await console.serious_violations() == []
    let_through["all"] = True
    await page.get_by_label("Target table").select_option(customers)
    await page.get_by_label("CSV file").set_input_files(path)
    await page.get_by_role("button", name="Import", exact=True).click()
    await expect(page.locator("#metrics")).to_contain_text(
        f"Total records{RECORDS:,}", timeout=120_000
    )
    assert offsets[3:] == [PART, 2 * PART]  # only the rest was sent again
    await expect(unfinished).to_be_hidden()

    # One upload, one import, the table equal to the file.
    imports = await db.fetch(
        "SELECT id, status FROM tidegate.imports WHERE target_table = $1", customers
    )
    assert [(r["status"]) for r in imports] == ["completed"]
    linked = await db.fetchval("SELECT import_id FROM tidegate.uploads WHERE id = $1", upload_id)
    assert linked == imports[0]["id"]
    assert (
        await db.fetchval(
            "SELECT count(*) FROM tidegate.uploads WHERE target_table = $1", customers
        )
        == 1
    )
    assert await table_rows(db, customers) == [typed(r) for r in big_rows()]
    assert isinstance(linked, uuid.UUID)
