"""What a new user meets first (issue 21): a second `tidegate dev` cannot show the admin key
again, so it prints the one command that makes another, ready to paste; and where backups go."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from contextlib import redirect_stdout
from pathlib import Path

import asyncpg
import pytest

from tidegate import cli
from tidegate.stack import Stack


async def test_a_second_dev_prints_the_command_that_makes_another_admin_key(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    stack = Stack(tmp_path)
    stack.database_url = database_url
    stack.first_admin_key = None  # as when admin keys exist already
    printed = io.StringIO()
    with redirect_stdout(printed):
        cli._print_first_admin_key(stack)
    command = printed.getvalue().splitlines()[-1].strip()
    assert command.startswith("DATABASE_URL=") and command.endswith(" keys bootstrap")
    before = await db.fetchval("SELECT count(*) FROM tidegate.api_keys WHERE role = 'admin'")
    shell = await asyncio.create_subprocess_exec(
        "sh",
        "-c",
        command,
        env={"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await shell.communicate()
    assert shell.returncode == 0, err.decode()
    assert "tg_" in out.decode()  # the new key, shown once
    after = await db.fetchval("SELECT count(*) FROM tidegate.api_keys WHERE role = 'admin'")
    assert after == before + 1


def test_the_dev_stacks_backups_live_with_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIDEGATE_BACKUP_DIR", raising=False)
    stack = Stack(tmp_path)
    assert stack.service_env()["TIDEGATE_BACKUP_DIR"] == str(tmp_path.resolve() / "backups")
