"""Which errors are worth retrying, and retrying them with backoff, jitter and a cap."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry

from backfill.errors import DatabaseError

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


def is_transient(error: BaseException) -> bool:
    if isinstance(error, _TRANSIENT_EXCEPTIONS):
        return True
    # Errors raised by grpc before the client wraps them (seen on dropped streams).
    code = getattr(error, "code", None)
    if callable(code):
        try:
            value = code()
        except Exception:
            return False
        return getattr(value, "value", (None,))[0] in TRANSIENT_CODES
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, and a cap on the total time spent waiting."""

    initial_delay: float = 0.25
    max_delay: float = 16.0
    max_total_wait: float = 120.0

    def delays(self, rng: random.Random | None = None) -> Callable[[], float | None]:
        """A function that gives the next delay, or None once the total cap is reached."""
        rng = rng or random.Random()
        state = {"attempt": 0, "waited": 0.0}

        def next_delay() -> float | None:
            ceiling = min(self.max_delay, self.initial_delay * 2 ** state["attempt"])
            delay = rng.uniform(ceiling / 2, ceiling)
            if state["waited"] + delay > self.max_total_wait:
                return None
            state["attempt"] += 1
            state["waited"] += delay
            return delay

        return next_delay


def call_with_retry(action: Callable[[], T], policy: RetryPolicy, what: str,
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """Run `action`; retry transient errors; raise DatabaseError when it cannot succeed."""
    next_delay = policy.delays()
    while True:
        try:
            return action()
        except Exception as error:
            if not is_transient(error):
                raise DatabaseError(f"{what} failed: {_summary(error)}") from error
            delay = next_delay()
            if delay is None:
                raise DatabaseError(
                    f"{what} failed after retrying for {policy.max_total_wait:.0f}s: "
                    f"{_summary(error)}"
                ) from error
            sleep(delay)


def _summary(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}"[:300]
