"""The status's outlook, from what a run recorded: pure, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backfill.ledger import RunEntry
from backfill.run_view import Outlook, last_minute_rate, outlook_line, outlook_of, whole_run

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def at(seconds_ago: float, processed: int) -> dict:
    return {"at": (NOW - timedelta(seconds=seconds_ago)).isoformat(), "processed": processed}


def test_the_rate_is_over_the_last_minute_not_the_whole_run() -> None:
    # 100 items/s for a long while, then 10 items/s for the last minute.
    recent = [at(130, 0), at(60, 7000), at(30, 7300), at(1, 7590)]
    assert last_minute_rate(recent, NOW) == (7590 - 7000) / 60


def test_a_young_run_s_rate_counts_from_its_start() -> None:
    assert last_minute_rate([at(10, 0), at(0, 500)], NOW) == 50.0
    assert last_minute_rate([], NOW) == 0.0


def test_a_running_part_has_a_percentage_and_an_eta() -> None:
    part = RunEntry.parse({"status": "running", "counts": {"processed": 250}, "total": 1000,
                           "recent": [at(10, 0), at(0, 250)]}, NOW)
    outlook = outlook_of(part)
    assert (outlook.percent, outlook.per_second, outlook.eta_seconds) == (25.0, 25.0, 30.0)
    assert outlook_line(outlook) == ("25.0% of 1,000; 25.0 items/s over the last minute; "
                                     "ETA 30s at this pace")


def test_a_held_part_says_what_it_waits_on_and_gives_no_eta() -> None:
    part = RunEntry.parse({"status": "running", "state": "throttled", "total": 10,
                           "held_because": "http://app/health answered 503",
                           "counts": {"processed": 5}, "recent": [at(5, 5)]}, NOW)
    assert outlook_line(outlook_of(part)).endswith(
        "; waiting on: throttled: http://app/health answered 503 (no ETA while held)")


def test_a_sharded_run_is_done_when_its_slowest_shard_is() -> None:
    fast = Outlook(900, 1000, 100.0)  # 1 s left
    slow = Outlook(100, 1000, 10.0)  # 90 s left
    whole = whole_run([fast, slow])
    assert (whole.processed, whole.total, whole.per_second) == (1000, 2000, 110.0)
    assert whole.percent == 50.0 and whole.eta_seconds == 90.0
    assert outlook_line(whole).endswith("; ETA 1m30s at this pace")


def test_a_run_keeps_a_few_points_of_the_last_minute_enough_for_its_rate() -> None:
    from backfill.ledger import Ledger
    from backfill.stats import RunStats

    stats = RunStats("r", "backfill", "development", False, "p", "(default)", "wardrobe")
    start = NOW - timedelta(minutes=3)
    for second in range(181):  # 10 items/s for two minutes, then 40 items/s
        stats.processed = 10 * min(second, 120) + 40 * max(0, second - 120)
        stats.note_progress(start + timedelta(seconds=second))
    assert len(stats.recent) <= 16  # one every 5 s, the one before the minute, the newest
    recent = Ledger._progress(stats)["recent"]
    assert abs(last_minute_rate(recent, NOW) - 40) < 1
