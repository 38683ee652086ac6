"""Which errors are retried, how long, and how: the classification, the backoff with its
jitter and cap, and a refusal that stops a run at once (exit 3)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud.firestore_v1.bulk_batch import BulkWriteBatch

from backfill.errors import DatabaseError
from backfill.retry import RetryPolicy, call_with_retry, is_transient
from run_backfill_production import main as backfill
from tests.conftest import Database

TRANSIENT = [gexc.DeadlineExceeded("slow"), gexc.ResourceExhausted("quota"),
             gexc.Aborted("contention"), gexc.InternalServerError("oops"),
             gexc.ServiceUnavailable("down")]
FINAL = [gexc.PermissionDenied("Missing or insufficient permissions."),
         gexc.InvalidArgument("bad field path"), gexc.NotFound("no database"),
         gexc.FailedPrecondition("needs an index"), gexc.Unauthenticated("no token"),
         ValueError("a defect, not the database")]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
def test_transient_errors_are_retried(error: Exception) -> None:
    assert is_transient(error)
    calls: list[int] = []
    slept: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise error
        return "done"

    assert call_with_retry(flaky, RetryPolicy(), "reading", sleep=slept.append) == "done"
    assert len(calls) == 3 and len(slept) == 2


@pytest.mark.parametrize("error", FINAL, ids=lambda e: type(e).__name__)
def test_other_errors_stop_at_once(error: Exception) -> None:
    assert not is_transient(error)
    calls: list[int] = []
    slept: list[float] = []

    def refused() -> None:
        calls.append(1)
        raise error

    with pytest.raises(DatabaseError) as raised:
        call_with_retry(refused, RetryPolicy(), "reading a page", sleep=slept.append)
    assert (len(calls), slept) == (1, [])
    assert str(raised.value).startswith(f"reading a page failed: {type(error).__name__}: ")


def test_a_request_too_large_is_not_retried_though_its_code_is_transient() -> None:
    assert not is_transient(gexc.ResourceExhausted("Received message larger than max"))
    assert not is_transient(gexc.InvalidArgument("request exceeds maximum size"))


def test_the_backoff_doubles_with_full_jitter_up_to_its_caps() -> None:
    policy = RetryPolicy(initial_delay=0.25, max_delay=4.0, max_total_wait=20.0)
    next_delay = policy.delays(random.Random(1))
    delays: list[float] = []
    while (delay := next_delay()) is not None:
        delays.append(delay)
    ceilings = [min(4.0, 0.25 * 2 ** n) for n in range(len(delays))]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True)), delays
    assert sum(delays) <= 20.0 < sum(delays) + 4.0  # stops before the cap, not long before
    other = policy.delays(random.Random(2))
    assert [other() for _ in delays] != delays  # jitter: two runs do not retry in step


def test_when_the_budget_is_spent_the_error_says_so() -> None:
    slept: list[float] = []

    def down() -> None:
        raise gexc.ServiceUnavailable("connection refused")

    with pytest.raises(DatabaseError) as raised:
        call_with_retry(down, RetryPolicy(max_total_wait=3.0), "counting documents",
                        sleep=slept.append)
    assert str(raised.value) == (
        "the database could not be reached: counting documents failed after retrying for "
        "3s: ServiceUnavailable: 503 connection refused")
    assert 0 < sum(slept) <= 3.0


@pytest.mark.parametrize("error", [gexc.PermissionDenied("Missing or insufficient "
                                                         "permissions."),
                                   gexc.InvalidArgument("invalid write")],
                         ids=["PERMISSION_DENIED", "INVALID_ARGUMENT"])
@pytest.mark.slow
def test_a_refused_batch_stops_the_run_at_once_with_exit_3(
        db: Database, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    db.seed({f"i{n:02d}": {"style": ["Goth"]} for n in range(30)})
    before = db.update_times()
    calls: list[int] = []

    # A test double: the emulator enforces no IAM, so it never refuses a write this way.
    def refused(self: BulkWriteBatch, **_: Any) -> None:
        calls.append(1)
        raise error

    monkeypatch.setattr(BulkWriteBatch, "commit", refused)
    result = db.invoke(backfill, ["--max-retry-seconds", "120", "--batch-size", "10",
                                  "--parallel-batches", "1", "--parallel-reads", "1"])
    assert result.exit_code == 3, result.output
    assert calls == [1]  # refused once: not retried for the 120 s budget
    assert f"❌ writing a batch failed: {type(error).__name__}: " in result.stderr
    assert db.update_times() == before


def test_an_outage_of_many_retries_keeps_its_backoff_at_the_cap() -> None:
    """Before: after 1,024 tries (a budget of a day, an outage of hours), the doubling
    overflowed (OverflowError) instead of the clean end of the budget."""
    next_delay = RetryPolicy(max_total_wait=86_400).delays(random.Random(1))
    delays = [next_delay() for _ in range(2000)]
    assert all(d is not None and 8.0 <= d <= 16.0 for d in delays[10:])
