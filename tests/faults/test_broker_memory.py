"""The embedded broker keeps every record for ever (tansu's memory engine has no retention),
so what it holds must be small: a chunk travels as a reference, a verdict and an outcome of
a few hundred bytes, never as its rows. 20 imports in a row leave its memory where it was,
within a generous bound. When every chunk's rows travelled (before the claim check), the
same 15 imports grew it by 14.8 MB (23.1 → 37.9 MB, measured on 6d15c31); now by about 2 MB."""

from __future__ import annotations

import uuid

import psutil

from tests.conftest import wait_final
from tests.faults.conftest import ROWS, Scenario
from tidegate.sample_data import TABLE_SQL

IMPORTS = 20
GROWTH_MB = 5  # allowed growth from the 5th import to the 20th


def _rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / (1 << 20)


async def test_the_broker_does_not_grow_with_the_imports_it_carries(scenario: Scenario) -> None:
    pid = scenario.broker.pid
    assert pid is not None
    after: list[float] = []
    for n in range(IMPORTS):
        table = f"public.memory_{n}_{uuid.uuid4().hex[:6]}"
        await scenario.db.execute(TABLE_SQL.format(table=table))
        import_id = await scenario.upload(table=table)
        final = await wait_final(scenario.db, import_id)
        assert (final["status"], final["loaded_rows"]) == ("completed", ROWS)
        after.append(_rss_mb(pid))
    assert after[-1] - after[4] < GROWTH_MB, after
    assert max(after) < 100, after
