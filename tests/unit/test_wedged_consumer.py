"""When a consumer loop gives up on its consumer and builds a new one (shared/kafka/consumer.py)."""

from __future__ import annotations

from shared.kafka.consumer import WEDGED_SECONDS, records_behind, wedged


def test_a_member_is_wedged_only_with_records_waiting_and_nothing_applied_for_long() -> None:
    long = WEDGED_SECONDS + 1
    assert wedged(lag=18, busy=False, idle_seconds=long)
    assert not wedged(lag=0, busy=False, idle_seconds=long)  # nothing waits: idle is fine
    assert not wedged(lag=18, busy=True, idle_seconds=long)  # applying a slow event
    assert not wedged(lag=18, busy=False, idle_seconds=WEDGED_SECONDS - 1)


def test_a_member_past_its_partitions_end_reads_it_again_from_the_start() -> None:
    assert records_behind(40, 42) == 2
    assert records_behind(42, 42) == 0
    # The broker lost the log and began it again: 42 records now, the member stood at 50.
    # However far the new log has grown since, by the ends ListOffsets reports, the member
    # must not count -8 records waiting (a lag that never reaches 0 is a stall forever).
    assert records_behind(50, 42) is None
