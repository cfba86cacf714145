"""The console's screens in a real browser, against the live stack: sign-in and roles,
validating a file with bad cells, live import progress, hostile cells shown as text, and
axe-core's accessibility checks."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable

import aiohttp
import asyncpg
from playwright.async_api import FilePayload, Locator, expect

from shared.api_keys import parse_token
from tests.browser.conftest import Console
from tests.conftest import MakeKey, bearer, holding_id, wait_final
from tests.e2e.test_import_pipeline import post_csv

HEADER = "id,name,email,city,signup_date,balance,active,last_seen,notes"


def csv_file(rows: list[list[str]], header: str = HEADER) -> bytes:
    out = io.StringIO()
    out.write(header + "\n")
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


async def test_sign_in_offers_what_the_role_may_do(console: Console, make_key: MakeKey) -> None:
    page = console.page
    console.refusals.add(401)
    await console.open()
    await page.get_by_label("API key").fill("tg_not_a_key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#sign-in-error")).to_contain_text("not valid")

    viewer = await make_key("viewer")
    await console.sign_in(viewer)
    nav = page.get_by_role("navigation", name="Screens")
    await expect(nav.get_by_role("link")).to_have_text(
        ["Validation", "Imports", "Verification", "Troubleshooting"]
    )
    await expect(page.get_by_role("button", name="Validate")).to_be_visible()
    await expect(page.get_by_role("button", name="Import")).to_have_count(0)
    await expect(page.get_by_role("button", name="Dry run")).to_have_count(0)
    # The key stays in this tab's session storage, never in the address or a cookie.
    assert viewer not in page.url
    assert await page.context.cookies() == []
    assert await page.evaluate("sessionStorage.getItem('tidegate.api-key')") == viewer

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("API key")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0

    manager = await make_key("data_manager")
    await console.sign_in(manager)
    await expect(page.get_by_role("button", name="Import", exact=True)).to_be_visible()
    await expect(page.get_by_role("button", name="Dry run")).to_be_visible()

    subscriber = await make_key("subscriber")
    await page.get_by_role("button", name="Sign out").click()
    await console.sign_in(subscriber)
    await expect(page.get_by_role("heading", name="Nothing to show")).to_be_visible()


async def test_a_revoked_key_is_signed_out(
    console: Console, make_key: MakeKey, db: asyncpg.Connection
) -> None:
    token = await make_key("data_manager")
    await console.sign_in(token)
    parsed = parse_token(token)
    assert parsed is not None
    await db.execute("UPDATE tidegate.api_keys SET revoked_at = now() WHERE lookup = $1", parsed[0])
    console.refusals.add(401)
    await console.page.get_by_role("link", name="Imports").click()
    await expect(console.page.locator("#sign-in-error")).to_contain_text("no longer valid")


async def test_validate_a_file_with_bad_cells_then_import_it(
    console: Console, make_key: MakeKey, customers: str, db: asyncpg.Connection
) -> None:
    page = console.page
    token = await make_key("data_manager", tables=[customers])
    await console.sign_in(token)
    await page.get_by_label("Target table").select_option(customers)
    rows = [
        ["1", "Ann", "ann@example.com", "Oslo", "2024-01-02", "10.50", "true", "", "ok"],
        ["2", "Bob", "not-an-email", "Rome", "2024-13-45", "x", "true", "", "ok"],
        [
            "3",
            "<script>alert(1)</script>",
            "c@example.com",
            "",
            "2024-01-02",
            "1",
            "true",
            "",
            '=HYPERLINK("http://evil")',
        ],
        ["1", "Dup", "dup@example.com", "", "2024-01-02", "1", "false", "", ""],
    ]
    upload: FilePayload = {
        "name": "people.csv",
        "mimeType": "text/csv",
        "buffer": csv_file(rows, HEADER + ",shoe"),
    }
    await page.get_by_label("CSV file").set_input_files(files=upload)
    await expect(page.locator("#detected-encoding")).to_have_text("UTF-8")
    await expect(page.locator("#detected-delimiter")).to_have_text("comma")
    mapping = page.locator("#mapping")
    await expect(mapping.get_by_role("row", name="shoe")).to_contain_text(
        "not in the table: refused"
    )
    await expect(page.locator("#first-rows tbody tr")).to_have_count(4)
    # The hostile cell is text, not markup.
    await expect(
        page.locator("#first-rows").get_by_text("<script>alert(1)</script>")
    ).to_be_visible()

    console.refusals.add(422)
    await page.get_by_role("button", name="Validate").click()
    await expect(page.locator("#validate-error")).to_contain_text("columns not in the table: shoe")
    await page.get_by_label("Ignore columns the table does not have").check()
    await expect(mapping.get_by_role("row", name="shoe")).to_contain_text("ignored")
    await page.get_by_role("button", name="Validate").click()

    metrics = page.locator("#metrics")
    await expect(metrics).to_contain_text("Total records4", timeout=30_000)
    # Line 3 has a bad date and a bad number, line 4 markup in a text cell, line 5 the id
    # line 2 already holds.
    await expect(metrics).to_contain_text("Failed records3")
    await expect(metrics).to_contain_text("Duplicates1")
    await expect(metrics).to_contain_text("Invalid format fieldsbalance (1), signup_date (1)")
    grid = page.locator("#error-grid")
    line3 = grid.locator("tbody tr").filter(has=page.get_by_role("rowheader", name="3"))
    await expect(line3.locator("td.bad")).to_have_count(2)
    date_cell = line3.locator("td.bad").first
    await expect(date_cell).to_contain_text("2024-13-45")
    await date_cell.focus()
    tip = date_cell.locator(".reason")
    await expect(tip).to_be_visible()
    await expect(tip).to_contain_text("invalid_date")
    hostile = grid.locator("td.bad").filter(has_text="<script>alert(1)</script>")
    await expect(hostile).to_have_count(1)  # shown as the characters it holds
    await expect(hostile.locator(".reason")).to_contain_text("markup")
    line5 = grid.locator("tbody tr").filter(has=page.get_by_role("rowheader", name="5"))
    await expect(line5.locator("td.bad")).to_have_count(1)  # the id line 2 already holds
    await expect(line5.locator("td.bad .reason")).to_contain_text("duplicate")
    assert console.dialogs == []  # no script ran from a cell

    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Download all").click()
    download = await download_info.value
    lines = (await download.path()).read_text().splitlines()
    assert lines[0].startswith("line,")
    async with aiohttp.ClientSession(base_url=console.base, headers=bearer(token)) as http:
        newest = await (await http.get("/api/v1/database/imports?limit=1")).json()
        total = (await (await http.get(newest["items"][0]["links"]["errors"])).json())["total"]
    assert len(lines) == 1 + total

    assert await console.serious_violations() == []

    await page.get_by_role("button", name="Import this file").click()
    await expect(page.locator("#result-title")).to_have_text("import of people.csv")
    await expect(page.locator("#result")).to_contain_text("Completed with errors", timeout=30_000)
    assert await db.fetchval(f"SELECT count(*) FROM {customers}") == 1


async def test_import_progress_moves_live_to_completion(
    console: Console,
    make_key: MakeKey,
    customers: str,
    db: asyncpg.Connection,
    services: object,
) -> None:
    page = console.page
    token = await make_key("data_manager", tables=[customers])
    await console.sign_in(token)
    await page.get_by_role("link", name="Imports").click()
    await expect(page.get_by_role("heading", name="Imports")).to_be_visible()
    await expect(page.locator("#imports")).to_be_visible()

    rows = [
        [str(i), f"N{i}", f"n{i}@example.com", "", "2024-01-02", "1", "true", "", ""]
        for i in range(1, 6001)
    ]
    seen: list[int] = []

    async def watch(bar: Locator, until: Callable[[int], bool]) -> None:
        for _ in range(600):
            seen.append(int(await bar.get_attribute("value") or 0))
            if until(seen[-1]):
                return
            await asyncio.sleep(0.05)

    # The chunk bringing id 3000 waits on this uncommitted row: certainly seen half-way.
    async with holding_id(db, customers, 3000):
        async with aiohttp.ClientSession(
            base_url=console.base, headers={"Authorization": f"Bearer {token}"}
        ) as http:
            status, answer, _ = await post_csv(http, customers, csv_file(rows), chunk_size="50")
        assert status == 202
        row = page.locator(f"tr[data-import='{answer['id']}']")
        await expect(row).to_be_visible(timeout=10_000)  # appeared without a reload
        await watch(row.locator("progress"), lambda v: 0 < v < 100)
        assert 0 < seen[-1] < 100, seen  # it moved on the way, live
    await watch(row.locator("progress"), lambda v: v == 100)
    assert seen[-1] == 100, seen
    assert seen == sorted(seen)
    await expect(row).to_contain_text("Completed")
    await expect(row).to_contain_text("6,000")
    final = await wait_final(db, answer["id"])
    assert final["loaded_rows"] == 6000

    await row.get_by_role("link").click()
    await expect(page.locator("#import-detail")).to_contain_text("Timeline")
    await expect(page.locator("#import-detail .timeline li").first).to_be_visible()
    assert await console.serious_violations() == []


async def test_the_list_holds_a_hundred_imports_and_pages_back(
    console: Console, make_key: MakeKey, customers: str, db: asyncpg.Connection
) -> None:
    token = await make_key(
        "data_manager", tables=[customers], requests_per_minute=10_000, concurrent_imports=60
    )
    team_rows = [["1", "A", "a@example.com", "", "2024-01-02", "1", "true", "", ""]]
    async with aiohttp.ClientSession(
        base_url=console.base, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        ids = []
        for _ in range(105):
            status, answer, _ = await post_csv(
                http, customers, csv_file(team_rows), validate_only="true"
            )
            assert status == 202, answer
            ids.append(answer["id"])
    for import_id in ids:
        await wait_final(db, import_id)
    await console.sign_in(token)
    page = console.page
    await page.get_by_role("link", name="Imports").click()
    body = page.locator("#imports tbody tr")
    await expect(body).to_have_count(100)
    await expect(body.first).to_have_attribute("data-import", ids[-1])  # newest first
    await page.get_by_role("button", name="Load older imports").click()
    await expect(body).to_have_count(105)
    await expect(page.get_by_role("button", name="Load older imports")).to_be_hidden()


async def test_verify_a_table_and_drill_down_to_the_changed_row(
    console: Console, make_key: MakeKey, customers: str, db: asyncpg.Connection
) -> None:
    token = await make_key("data_manager", tables=[customers])
    rows = [
        [str(i), f"N{i}", f"n{i}@example.com", "", "2024-01-02", "1", "true", "", ""]
        for i in (1, 2, 3)
    ]
    async with aiohttp.ClientSession(base_url=console.base, headers=bearer(token)) as http:
        _, answer, _ = await post_csv(http, customers, csv_file(rows))
    await wait_final(db, answer["id"])
    await db.execute(f"UPDATE {customers} SET name = 'changed by hand' WHERE id = 2")

    page = console.page
    await console.sign_in(token)
    await page.get_by_role("link", name="Verification").click()
    await page.get_by_label("Table to verify").select_option(customers)
    await page.get_by_role("button", name="Verify").click()
    card = page.locator(f"section[data-table='{customers}']")
    await expect(card).to_contain_text("Findings", timeout=30_000)
    await expect(card.locator(".metrics")).to_contain_text("Total records3")
    finding = card.locator("table.findings tbody tr")
    await expect(finding).to_have_count(1)
    await expect(finding).to_contain_text("id=2")
    await expect(finding).to_contain_text("changed_since_import")
    await expect(card.locator("table.history tbody tr")).to_have_count(1)
    assert await console.serious_violations() == []


async def test_phone_width_keeps_every_screen_usable(console: Console, make_key: MakeKey) -> None:
    page = console.page
    await page.set_viewport_size({"width": 390, "height": 844})
    await console.sign_in(await make_key("data_manager"))
    for screen in ("Validation", "Imports", "Verification", "Troubleshooting", "Recovery"):
        await page.get_by_role("link", name=screen).click()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (screen, width)  # wide tables scroll inside their box
        assert await console.serious_violations() == []


async def test_the_preview_names_the_encoding_the_gateway_decides(
    console: Console, make_key: MakeKey, customers: str
) -> None:
    """A KOI8-R file is previewed in Cyrillic, as the import will read it; a file the
    gateway cannot tell is refused in the preview with its candidates (issue 21)."""
    page = console.page
    await console.sign_in(await make_key("data_manager", tables=[customers]))
    await page.get_by_label("Target table").select_option(customers)
    rows = [
        ["1", "Иван Петров", "ivan@example.com", "Москва", "2024-01-02", "1", "true", "", ""],
        ["2", "Мария Смирнова", "m@example.com", "Санкт-Петербург", "2024-01-02", "1", "true",
         "", "Заказ доставлен вовремя, спасибо."],
    ]  # fmt: skip
    koi8: FilePayload = {
        "name": "russian.csv",
        "mimeType": "text/csv",
        "buffer": csv_file(rows).decode().encode("koi8-r"),
    }
    await page.get_by_label("CSV file").set_input_files(files=koi8)
    await expect(page.locator("#detected-encoding")).to_have_text("KOI8-R")
    await expect(page.locator("#encoding-decided-by")).to_contain_text("detected")
    await expect(page.locator("#first-rows")).to_contain_text("Санкт-Петербург")

    console.refusals.add(422)
    ambiguous: FilePayload = {
        "name": "short.csv",
        "mimeType": "text/csv",
        "buffer": (HEADER + "\n1,Zofia,z@example.com,Gdańsk,2024-01-02,1,true,,proszę\n").encode(
            "cp1250"
        ),
    }
    await page.get_by_label("CSV file").set_input_files(files=ambiguous)
    await expect(page.locator("#validate-error")).to_contain_text("windows-1250")
    await expect(page.locator("#preview")).to_be_hidden()
