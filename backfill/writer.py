"""Writing a batch of updates in one round trip, each with its own precondition.

A WriteBatch commit is atomic: one failed precondition fails the whole batch. The
BatchWrite RPC (what the client's BulkWriter sends) applies each write on its own and
reports a status per write, so one concurrently edited item cannot hold back the other
499. We send BatchWrite directly rather than through BulkWriter, because BulkWriter
retries every failed write (failed preconditions included) up to 15 times on its own
and caps itself at its own rate; here a failed precondition must come back to the caller,
who re-reads the item and decides again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.bulk_batch import BulkWriteBatch
from google.cloud.firestore_v1.document import DocumentReference

from backfill.errors import DatabaseError, RunInterrupted
from backfill.ratelimit import WriteRateLimiter
from backfill.retry import (
    FAILED_PRECONDITION,
    NO_LIBRARY_RETRY,
    NOT_FOUND,
    TRANSIENT_CODES,
    RetryPolicy,
    call_timeout,
    call_with_retry,
)
from backfill.sizes import value_bytes, within_budget

MAX_BATCH_WRITES = 500  # Firestore's limit for one BatchWrite request
# Firestore takes requests up to 10 MiB, but gRPC channels (older clients', the
# emulator's) stop at 4 MiB: a request stays well under that.
MAX_REQUEST_BYTES = 3 * 1024 * 1024
WRITE_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Write:
    """An update of some field paths of one document, if it was not changed since read."""

    reference: DocumentReference
    fields: dict[str, Any]  # field path -> new value (or DELETE_FIELD)
    last_update_time: Any  # the update_time read with the document


class WriteStatus(Enum):
    OK = "ok"
    CONFLICT = "conflict"  # the document changed after it was read
    MISSING = "missing"  # the document was deleted after it was read
    FAILED = "failed"  # refused for another reason; see message


@dataclass(frozen=True)
class WriteResult:
    write: Write
    status: WriteStatus
    message: str = ""
    # The time the server set where the write asked for it (SERVER_TIMESTAMP), in ns:
    # one per request, and not its update_time (the emulator's differ).
    server_time: int | None = None


class WritesStopped(RunInterrupted):
    """The run's stop came while writes waited to be sent (their rate slot, a pause
    before sending again those that failed transiently): `landed` says, per write, in
    order, whether it landed (and the server's time it set). Those not sent did not;
    the journal records it."""

    def __init__(self, reason: str, results: list[WriteResult | None]) -> None:
        super().__init__(reason)
        self.landed = [r is not None and r.status is WriteStatus.OK for r in results]
        self.server_times = [None if r is None else r.server_time for r in results]


class _NotSent(Exception):
    """Within one request's writes: the stop came before `pending` were sent."""

    def __init__(self, stop: RunInterrupted, results: dict[int, WriteResult]) -> None:
        super().__init__(str(stop))
        self.stop, self.results = stop, results


def write_bytes(write: Write) -> int:
    return (len(write.reference.path) + 200 + value_bytes(write.fields)
            + 8 * len(write.fields))


def request_chunks(writes: Sequence[Write]) -> list[list[int]]:
    """Indexes of `writes` in consecutive requests of at most MAX_BATCH_WRITES writes and
    MAX_REQUEST_BYTES: no request is ever too big to send."""
    return list(within_budget(range(len(writes)), lambda i: write_bytes(writes[i]),
                              MAX_REQUEST_BYTES, MAX_BATCH_WRITES))


def commit_writes(client: firestore.Client, writes: Sequence[Write], policy: RetryPolicy,
                  limiter: WriteRateLimiter | None = None,
                  sleep: Callable[[float], None] | None = None) -> list[WriteResult]:
    """Apply `writes` (one per document); a result per write, in order. They go in as
    few requests as the count and size limits allow.

    Writes that fail transiently are sent again (only those), with backoff; when the
    policy's total wait is spent, DatabaseError is raised, as for any fatal error.
    """
    results: dict[int, WriteResult] = {}
    for chunk in request_chunks(writes):
        try:
            answers = _commit_request(client, [writes[i] for i in chunk], policy, limiter,
                                      sleep or policy.pause)
        except _NotSent as unsent:
            results.update((chunk[i], result) for i, result in unsent.results.items())
            raise WritesStopped(str(unsent.stop), [
                results.get(index) for index in range(len(writes))]) from unsent.stop
        results.update(zip(chunk, answers, strict=True))
    return [results[index] for index in range(len(writes))]


def _commit_request(client: firestore.Client, writes: Sequence[Write], policy: RetryPolicy,
                    limiter: WriteRateLimiter | None,
                    sleep: Callable[[float], None]) -> list[WriteResult]:
    """One BatchWrite (and its transient retries)."""
    results: dict[int, WriteResult] = {}
    pending = list(range(len(writes)))
    next_delay = policy.delays()
    while pending:
        if limiter is not None:
            _before_sending(partial(limiter.acquire, len(pending)), results)
        batch = BulkWriteBatch(client)
        for index in pending:
            write = writes[index]
            option = client.write_option(last_update_time=write.last_update_time)
            batch.update(write.reference, write.fields, option=option)
        response = call_with_retry(
            partial(_send, batch), policy, "writing a batch")
        again: list[int] = []
        for index, status, result in zip(pending, response.status, response.write_results,
                                         strict=True):
            write = writes[index]
            if status.code == 0:
                results[index] = WriteResult(write, WriteStatus.OK,
                                             server_time=_server_time(result))
            elif status.code == FAILED_PRECONDITION:
                results[index] = WriteResult(write, WriteStatus.CONFLICT, status.message)
            elif status.code == NOT_FOUND:
                results[index] = WriteResult(write, WriteStatus.MISSING, status.message)
            elif status.code in TRANSIENT_CODES:
                again.append(index)
            else:
                results[index] = WriteResult(write, WriteStatus.FAILED,
                                             f"write refused: code {status.code}: "
                                             f"{status.message}")
        if again:
            delay = next_delay()
            if delay is None:
                raise DatabaseError(f"{len(again)} writes kept failing transiently after "
                                    f"retrying for {policy.max_total_wait:.0f}s")
            _before_sending(partial(sleep, delay), results)
        pending = again
    return [results[index] for index in range(len(writes))]


def _server_time(result: Any) -> int | None:
    """The server's time a landed write set (its transforms all set the same), in ns."""
    for value in result.transform_results:
        stamp = value._pb.timestamp_value if "timestamp_value" in value else None
        if stamp is not None:
            return int(stamp.seconds) * 10**9 + int(stamp.nanos)
    return None


def _before_sending(wait: Callable[[], object], results: dict[int, WriteResult]) -> None:
    """A wait before writes are sent, which the run's stop may end: what was not sent
    then is known not to have landed (unlike a request whose answer never came)."""
    try:
        wait()
    except RunInterrupted as stop:
        raise _NotSent(stop, results) from None


def _send(batch: BulkWriteBatch) -> Any:
    return batch.commit(retry=NO_LIBRARY_RETRY, timeout=call_timeout(WRITE_TIMEOUT_SECONDS))
