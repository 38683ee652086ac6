"""Which errors are worth retrying, and retrying them with backoff, jitter and a cap."""

from __future__ import annotations

import random
import threading
import time
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry

from backfill.errors import STOPPED_ON_REQUEST, DatabaseError, RunInterrupted

T = TypeVar("T")

# gRPC status codes (google.rpc.Code) that say "try again": the request may succeed later.
TRANSIENT_CODES = frozenset({
    4,  # DEADLINE_EXCEEDED
    8,  # RESOURCE_EXHAUSTED
    10,  # ABORTED
    13,  # INTERNAL
    14,  # UNAVAILABLE
})
FAILED_PRECONDITION = 9
NOT_FOUND = 5

_TRANSIENT_EXCEPTIONS = (
    gexc.DeadlineExceeded,
    gexc.ResourceExhausted,
    gexc.Aborted,
    gexc.InternalServerError,
    gexc.ServiceUnavailable,
    gexc.RetryError,  # a library-level retry that ran out on one of the above
)

# Handed to the client library's query streams instead of its default: the default
# stream retry resumes from the last snapshot on its own (and crashes when there is
# none, or with retry=None). Pages are retried whole here, from our own cursor.
NO_LIBRARY_RETRY = Retry(predicate=lambda _exc: False)


UNAVAILABLE = 14
UNREACHABLE_CODES = frozenset({4, UNAVAILABLE})  # and DEADLINE_EXCEEDED


def _code(error: BaseException) -> int | None:
    """The gRPC status code of an error, whether the client wrapped it or not."""
    if isinstance(error, gexc.GoogleAPICallError) and error.grpc_status_code is not None:
        return int(error.grpc_status_code.value[0])
    if isinstance(error, gexc.RetryError) and error.cause is not None:
        return _code(error.cause)
    # Errors raised by grpc before the client wraps them (seen on dropped streams).
    code = getattr(error, "code", None)
    if callable(code):
        try:
            value = code()
        except Exception:
            return None
        number = getattr(value, "value", (None,))[0]
        return number if isinstance(number, int) else None
    return None


def is_transient(error: BaseException) -> bool:
    # RESOURCE_EXHAUSTED also says a request is too big for the wire: sent again, it
    # would be just as big.
    if "exceeds maximum size" in str(error) or "larger than max" in str(error):
        return False
    return isinstance(error, _TRANSIENT_EXCEPTIONS) or _code(error) in TRANSIENT_CODES


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, and a cap on the total time spent waiting.
    With `stop` (a run's, for what the run does while it goes on, not for its closing
    steps), a wait between tries ends when the run is asked to stop: RunInterrupted."""

    initial_delay: float = 0.25
    max_delay: float = 16.0
    max_total_wait: float = 120.0
    stop: threading.Event | None = field(default=None, compare=False, repr=False)

    def pause(self, delay: float) -> None:
        """Wait `delay` seconds between tries, or until the stop."""
        if self.stop is None:
            time.sleep(delay)
        elif self.stop.wait(delay):
            raise RunInterrupted(STOPPED_ON_REQUEST)

    def delays(self, rng: random.Random | None = None) -> Callable[[], float | None]:
        """A function that gives the next delay, or None once the total cap is reached."""
        rng = rng or random.Random()
        state = {"attempt": 0, "waited": 0.0}

        def next_delay() -> float | None:
            ceiling = min(self.max_delay, self.initial_delay * 2 ** state["attempt"])
            delay = rng.uniform(ceiling / 2, ceiling)
            if state["waited"] + delay > self.max_total_wait:
                return None
            if ceiling < self.max_delay:  # once at the cap, the exponent grows no more
                state["attempt"] += 1
            state["waited"] += delay
            return delay

        return next_delay


class ResettableClient(Protocol):
    def reset_channel(self) -> None: ...


# Some grpcio versions (1.75, the app's) never reconnect a channel that saw a run of
# dropped connections: every call fails at once with UNAVAILABLE, whatever the backoff.
# After this many UNAVAILABLE in a row, the clients get a fresh channel.
UNAVAILABLE_BEFORE_NEW_CHANNEL = 1
_clients: weakref.WeakSet[ResettableClient] = weakref.WeakSet()


def renew_channel_when_stuck(client: ResettableClient) -> None:
    """Register a client whose channel is replaced after repeated UNAVAILABLE."""
    _clients.add(client)


# When the operation being retried must be given up, by the monotonic clock: each call
# it makes waits at most until then (call_timeout), so that a database that takes calls
# and never answers is given up within the budget, as one that refuses them is.
_deadline: ContextVar[float | None] = ContextVar("retry_deadline", default=None)
MIN_CALL_SECONDS = 1.0  # a call needs a little time, even at the end of the budget
CALL_SECONDS = 30.0  # one call on a small document (ledger, journal): its own deadline


def call_timeout(limit: float) -> float:
    """A call's own timeout: `limit`, or what is left of the operation's retry budget."""
    deadline = _deadline.get()
    if deadline is None:
        return limit
    return max(MIN_CALL_SECONDS, min(limit, deadline - time.monotonic()))


def call_with_retry(action: Callable[[], T], policy: RetryPolicy, what: str,
                    sleep: Callable[[float], None] | None = None) -> T:
    """Run `action`; retry transient errors; raise DatabaseError when it cannot succeed.
    The budget (policy.max_total_wait) counts the calls' own waits as well as the sleeps
    between them: an action's calls take their timeout from call_timeout()."""
    next_delay = policy.delays()
    deadline = time.monotonic() + policy.max_total_wait
    token = _deadline.set(deadline)
    try:
        return _retrying(action, policy, what, sleep or policy.pause, next_delay, deadline)
    finally:
        _deadline.reset(token)


def _retrying(action: Callable[[], T], policy: RetryPolicy, what: str,
              sleep: Callable[[float], None], next_delay: Callable[[], float | None],
              deadline: float) -> T:
    unavailable = 0
    while True:
        try:
            return action()
        except Exception as error:
            if not is_transient(error):
                raise DatabaseError(f"{what} failed: {_summary(error)}") from error
            unavailable = unavailable + 1 if _code(error) == UNAVAILABLE else 0
            if unavailable and unavailable % UNAVAILABLE_BEFORE_NEW_CHANNEL == 0:
                for client in list(_clients):
                    client.reset_channel()
            delay = next_delay()
            if delay is not None and time.monotonic() + delay > deadline:
                delay = None  # the calls took the budget: no time for another one
            if delay is None:
                unreachable = ("the database could not be reached: "
                               if _code(error) in UNREACHABLE_CODES else "")
                raise DatabaseError(
                    f"{unreachable}{what} failed after retrying for "
                    f"{policy.max_total_wait:.0f}s: {_summary(error)}"
                ) from error
            sleep(delay)


def _summary(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}"[:300]
