"""Telling a chat that a run ended (--notify-url, BACKFILL_NOTIFY_URL): however it ended,
one JSON POST to each URL, with `text` (the field Slack's and most chat webhooks show)
and `run` (what happened, for a machine).

A webhook never changes how the run ends: each POST has a short timeout and at most
NOTIFY_TRIES tries, all URLs at once, and the exit waits for them no longer than that.
A URL is shown as its scheme and host only: Slack's webhook secret is its path. A POST
is never redirected (backfill.health_url.call): a redirect is not a delivery.
Standard library HTTP only.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import Any

from backfill.health_url import NotifyUrl, call, parse_notify_urls
from backfill.limits import NOTIFY_TIMEOUT_SECONDS as NOTIFY_TIMEOUT_SECONDS
from backfill.stats import RunStats
from backfill.status import RunStatus

NOTIFY_TRIES = 2
def run_message(stats: RunStats) -> dict[str, Any]:
    """What is posted: one line for people, the run's facts for machines."""
    errors = stats.error_count
    if stats.status == RunStatus.COMPLETED:
        status = "completed with item errors" if errors else "completed"
        mark = "⚠️" if errors else "✅"
    else:
        status, mark = str(stats.status), "❌"
    where = f"{stats.collection} ({stats.environment}, project {stats.project}"
    where += f", shard {stats.shard})" if stats.shard else ")"
    text = (f"{mark} {stats.tool} run {stats.run_id} of {where} {status}: "
            f"{stats.processed:,} processed, {stats.updated:,} written, {errors:,} errors, "
            f"in {stats.duration_seconds:.0f}s")
    if stats.stopped_because:
        text += f"; {stats.stopped_because}"
    counts = {"processed": stats.processed, "updated": stats.updated,
              "skipped": stats.skipped, "vanished": stats.vanished, "errors": errors}
    return {"text": text, "run": {
        "id": stats.run_id, "tool": stats.tool, "status": str(stats.status), "counts": counts,
        "duration_seconds": round(stats.duration_seconds, 1),
        "reason": stats.stopped_because, "environment": stats.environment,
        "project": stats.project, "collection": stats.collection,
        "shard": None if stats.shard is None else str(stats.shard)}}


def notify(texts: Sequence[str], message: dict[str, Any],
           timeout: float = NOTIFY_TIMEOUT_SECONDS) -> list[str]:
    """POST `message` to every URL at once, each at most NOTIFY_TRIES times; returns a
    line per URL that did not take it. Returns within NOTIFY_TRIES * timeout (and a
    little): a webhook still answering then is left to its daemon thread."""
    body = json.dumps(message, ensure_ascii=False, default=str).encode()
    urls = parse_notify_urls(texts)
    lock = threading.Lock()
    # Each URL's problem until it took the message (a hang keeps the first one).
    failures = {url: f"it did not answer within {NOTIFY_TRIES} tries of {timeout:g}s"
                for url in urls}

    def deliver(url: NotifyUrl) -> None:
        for _ in range(NOTIFY_TRIES):
            answer = call(url.url, url.authorization, timeout, body)
            problem = None if answer is None else f"it {answer}"
            with lock:
                if problem is None:
                    failures.pop(url, None)
                    return
                failures[url] = problem
            if problem.startswith(("it answered 3", "it answered 4")):
                return  # refused or redirected: the same request again gets the same

    threads = [threading.Thread(target=deliver, args=(url,), name="notify", daemon=True)
               for url in urls]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + NOTIFY_TRIES * timeout + 0.5
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    with lock:
        return [f"the notification to {url.shown} was not delivered: {problem}"
                for url, problem in failures.items()]
