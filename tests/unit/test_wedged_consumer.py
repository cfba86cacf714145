"""When a consumer loop gives up on its consumer and builds a new one (shared/kafka/consumer.py)."""

from __future__ import annotations

from shared.kafka.consumer import WEDGED_SECONDS, wedged


def test_a_member_is_wedged_only_with_records_waiting_and_nothing_applied_for_long() -> None:
    long = WEDGED_SECONDS + 1
    assert wedged(lag=18, busy=False, idle_seconds=long)
    assert not wedged(lag=0, busy=False, idle_seconds=long)  # nothing waits: idle is fine
    assert not wedged(lag=18, busy=True, idle_seconds=long)  # applying a slow event
    assert not wedged(lag=18, busy=False, idle_seconds=WEDGED_SECONDS - 1)
