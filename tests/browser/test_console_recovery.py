"""The troubleshooting and recovery screens in a real browser, against the live stack:
an import's timeline and errors, its failed rows exported and retried corrected, a record's
history, the system's status; back up, roll back, restore, delete and cancel, each after
its confirmation."""

from __future__ import annotations

import uuid

import aiohttp
import asyncpg
from playwright.async_api import FilePayload, expect

from tests.browser.conftest import Console
from tests.browser.test_console import HEADER, csv_file
from tests.conftest import MakeKey, bearer, unfinished_import, wait_final
from tests.e2e.test_import_pipeline import post_csv


def person(i: int, signup: str = "2024-01-02") -> list[str]:
    return [str(i), f"N{i}", f"n{i}@example.com", "", signup, "1", "true", "", ""]


async def _import(console: Console, token: str, table: str, rows: list[list[str]]) -> str:
    async with aiohttp.ClientSession(base_url=console.base, headers=bearer(token)) as http:
        status, answer, _ = await post_csv(http, table, csv_file(rows))
    assert status == 202, answer
    return str(answer["id"])


async def test_troubleshoot_an_import_retry_its_failed_rows_and_trace_a_record(
    console: Console, make_key: MakeKey, customers: str, db: asyncpg.Connection
) -> None:
    token = await make_key("data_manager", tables=[customers])
    first = await _import(console, token, customers, [person(1), person(2, "2024-02-30")])
    await wait_final(db, first)
    page = console.page
    await console.sign_in(token)
    await page.get_by_role("link", name="Troubleshooting").click()
    await page.get_by_label("Import", exact=True).select_option(first)
    await expect(page.locator("#trouble-timeline tbody tr").first).to_be_visible()
    await expect(page.locator("#trouble-timeline")).to_contain_text("chunk")
    errors = page.locator("#trouble-errors tbody tr")
    await expect(errors).to_have_count(1)
    await expect(errors).to_contain_text("invalid_date")
    await expect(errors).to_contain_text("2024-02-30")

    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Download failed rows (CSV)").click()
    exported = (await (await download_info.value).path()).read_text()
    lines = exported.splitlines()
    assert lines[0] == HEADER + ",tidegate_line,tidegate_errors"
    assert lines[1].startswith("2,N2,n2@example.com,,2024-02-30,")
    assert len(lines) == 2

    corrected: FilePayload = {
        "name": "fixed.csv",
        "mimeType": "text/csv",
        "buffer": exported.replace("2024-02-30", "2024-02-28").encode(),
    }
    await page.get_by_label("Corrected file").set_input_files(files=corrected)
    await page.get_by_role("button", name="Retry with this file").click()
    link = page.locator("#retry-link")
    await expect(link).to_have_text("fixed.csv")
    child = (await link.get_attribute("href") or "").rsplit("/", 1)[1]
    final = await wait_final(db, child)
    assert (final["status"], final["loaded_rows"]) == ("completed", 1)
    assert await db.fetchval(f"SELECT signup_date::text FROM {customers} WHERE id = 2") == (
        "2024-02-28"
    )

    await page.get_by_label("Table", exact=True).select_option(customers)
    await page.get_by_label("Key: id").fill("2")
    await page.get_by_role("button", name="Look up").click()
    await expect(page.locator("#record-current")).to_contain_text("n2@example.com")
    history = page.locator("#record-history tbody tr")
    await expect(history).to_have_count(1)
    await expect(history).to_contain_text("inserted")
    await expect(history).to_contain_text("fixed.csv")

    status = page.locator("#system-status")
    await expect(status).to_contain_text("Healthy")
    await expect(page.locator("#status-instances")).to_contain_text("validator")
    assert await console.serious_violations() == []


async def test_back_up_roll_back_restore_and_delete_with_confirmation(
    console: Console, make_key: MakeKey, customers: str, db: asyncpg.Connection
) -> None:
    admin = await make_key("admin", requests_per_minute=100_000)
    await wait_final(db, await _import(console, admin, customers, [person(1), person(2)]))
    page = console.page
    await console.sign_in(admin)
    await page.get_by_role("link", name="Recovery").click()
    await page.get_by_label(customers).check()
    reason = f"before the risky load {uuid.uuid4().hex[:8]}"  # an admin sees every backup
    await page.get_by_label("Reason (optional)").fill(reason)
    await page.get_by_role("button", name="Back up").click()
    await expect(page.locator("#recovery-status")).to_contain_text("done", timeout=30_000)
    backup = page.locator("#backup-list tbody tr").filter(has_text=reason)
    await expect(backup).to_have_count(1)
    await expect(backup).to_contain_text("completed")

    risky = await _import(console, admin, customers, [person(3)])
    await wait_final(db, risky)
    await page.reload()
    await page.locator(f"button[data-rollback='{risky}']").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("delete 1 rows it inserted and restore 0")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_have_count(0)
    assert await db.fetchval(f"SELECT count(*) FROM {customers}") == 3  # nothing happened
    await page.locator(f"button[data-rollback='{risky}']").click()
    await page.get_by_role("dialog").get_by_role("button", name="Roll back").click()
    await expect(page.locator("#recovery-status")).to_contain_text("Rollback: done")
    assert await db.fetchval(f"SELECT count(*) FROM {customers}") == 2
    rolled = page.locator("#rollback-list tbody tr").filter(has_text="Rolled back")
    await expect(rolled).to_have_count(1)
    await expect(rolled.get_by_role("button")).to_have_count(0)

    await db.execute(f"DELETE FROM {customers} WHERE id = 1")
    await backup.get_by_role("button", name="Restore").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text(f"{customers}: 2 rows")
    await dialog.get_by_role("button", name="Restore").click()
    await expect(page.locator("#recovery-status")).to_contain_text("Restore: done")
    assert await db.fetchval(f"SELECT array_agg(id ORDER BY id) FROM {customers}") == [1, 2]

    await backup.get_by_role("button", name="Delete").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await expect(page.locator("#recovery-status")).to_contain_text("Delete: done")
    await expect(backup).to_have_count(0)
    assert await console.serious_violations() == []


async def test_cancel_a_running_import(
    console: Console, make_key: MakeKey, customers: str, db: asyncpg.Connection
) -> None:
    stuck = await unfinished_import(db, customers)
    await console.sign_in(await make_key("admin"))
    page = console.page
    await page.get_by_role("link", name="Recovery").click()
    await page.locator(f"button[data-cancel='{stuck}']").click()
    await page.get_by_role("dialog").get_by_role("button", name="Cancel the import").click()
    await expect(page.locator("#recovery-status")).to_contain_text("Cancel: done")
    row = await wait_final(db, stuck)
    assert row["status"] == "cancelled"
    assert "cancelled" in row["error"]


async def test_what_each_role_is_offered_for_recovery(
    console: Console, make_key: MakeKey, customers: str
) -> None:
    page = console.page
    await console.sign_in(await make_key("viewer"))
    nav = page.get_by_role("navigation", name="Screens")
    await expect(nav.get_by_role("link", name="Troubleshooting")).to_be_visible()
    await expect(nav.get_by_role("link", name="Recovery")).to_have_count(0)
    await page.get_by_role("link", name="Troubleshooting").click()
    await expect(page.get_by_role("heading", name="Record history")).to_have_count(0)

    await page.get_by_role("button", name="Sign out").click()
    manager = await make_key("data_manager", tables=[customers])
    async with aiohttp.ClientSession(base_url=console.base, headers=bearer(manager)) as http:
        async with http.post("/api/v1/database/backups", json={"tables": [customers]}) as answer:
            assert answer.status == 202
    await console.sign_in(manager)
    await page.get_by_role("link", name="Recovery").click()
    await expect(page.locator("#backup-list tbody tr")).to_have_count(1)
    await expect(page.locator("#backup-list").get_by_role("button")).to_have_count(0)  # admin only


async def test_system_status_lists_recent_failures_as_a_table(
    console: Console, make_key: MakeKey, customers: str, db: asyncpg.Connection
) -> None:
    """A failed import shows in System status → Recent failures as rows of a table, not as
    the text of an array of elements (issue 21)."""
    token = await make_key("data_manager", tables=[customers])
    async with aiohttp.ClientSession(base_url=console.base, headers=bearer(token)) as http:
        status, answer, _ = await post_csv(
            http, customers, csv_file([person(31), person(32, "2024-02-30")]), atomic="true"
        )
    assert status == 202, answer
    assert (await wait_final(db, str(answer["id"])))["status"] == "failed"
    page = console.page
    await console.sign_in(token)
    await page.get_by_role("link", name="Troubleshooting").click()
    failures = page.locator("#status-failures")
    row = failures.locator("tbody tr", has_text=customers).first
    await expect(row).to_contain_text("atomic import", timeout=15_000)
    await expect(row).to_contain_text("failed")
    await expect(page.locator("#system-status")).not_to_contain_text("[object")


async def test_first_steps_in_the_console(
    console: Console, make_key: MakeKey, customers: str, db: asyncpg.Connection
) -> None:
    """Record history looks in the table of the import being viewed; "Retry with this
    file" sits beside its file input; the import options say what they do (issue 21)."""
    first = f"public.a_first_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {first} (id integer PRIMARY KEY)")
    admin = await make_key("admin", requests_per_minute=100_000)
    failed = await _import(console, admin, customers, [person(41), person(42, "2024-02-30")])
    await wait_final(db, failed)
    page = console.page
    await console.sign_in(admin)
    await expect(page.get_by_label("Roll back on failure")).to_be_checked()
    await expect(page.get_by_label("Roll back on failure")).to_have_accessible_name(
        "Roll back on failure: if the import ends failed (a whole chunk failed, or not one row"
        " could be loaded), remove every row it loaded; an import that completes with some"
        " rows refused keeps the rows it loaded"
    )
    await expect(page.get_by_label("All or nothing (atomic)")).not_to_be_checked()

    await page.get_by_role("link", name="Troubleshooting").click()
    await page.get_by_label("Import", exact=True).select_option(failed)
    await expect(page.get_by_label("Table", exact=True)).to_have_value(customers)
    field = await page.get_by_label("Corrected file").bounding_box()
    button = await page.get_by_role("button", name="Retry with this file").bounding_box()
    assert field is not None and button is not None
    assert button["x"] >= field["x"] + field["width"]  # to its right,
    assert abs((button["y"] + button["height"] / 2) - (field["y"] + field["height"] / 2)) < 12
