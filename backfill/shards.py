"""Splitting one collection into disjoint, contiguous ranges of document IDs.

Shard i of COUNT covers the IDs in [boundaries[i-1], boundaries[i]) (open at both ends
of the collection), so the shards of one COUNT are disjoint and cover every document,
whatever the IDs look like. The boundaries come from Firestore's partition queries where
the server has them (they balance the shards by the real data), and otherwise from a
deterministic split of the ID key space between the collection's first and last ID.
They are computed once per run and kept in the ledger, so every task uses the same.
"""

from __future__ import annotations

import bisect
import itertools
import os
import re
import string
from collections.abc import Callable, Mapping
from typing import Any

from google.cloud import firestore

from backfill.errors import ConfigurationError
from backfill.limits import MAX_SHARDS as MAX_SHARDS
from backfill.pager import KEYS_ONLY, PAGE_TIMEOUT_SECONDS, read_page
from backfill.ranges import Part, Shard
from backfill.retry import NO_LIBRARY_RETRY, RetryPolicy, call_timeout

# The key-space split counts in the alphabet of Firestore's auto IDs, in sort order, so
# that shards of auto IDs are balanced. IDs with other characters still fall into exactly
# one shard each (the ranges are contiguous); such shards may just be less even.
AUTO_ID_ALPHABET = "".join(sorted(string.digits + string.ascii_letters))  # in key order
_DIGITS = 8  # precision of the interpolation, in characters after the common prefix
PARTITION_QUERY = "partition_query"
KEY_SPACE = "key_space"


# The boundaries of a sharded run live in its ledger document (1 MiB at most), and each
# shard has a progress document: a thousand shards is far beyond any useful parallelism.
_SHARD = re.compile(r"([0-9]{1,4})/([0-9]{1,4})", re.ASCII)


def parse_shard(text: str) -> Shard:
    match = _SHARD.fullmatch(text)
    if match is None:
        raise ConfigurationError(f"--shard takes INDEX/COUNT in digits, like 0/4, "
                                 f"not {text[:40]!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= count <= MAX_SHARDS or not 0 <= index < count:
        raise ConfigurationError(f"--shard {text}: INDEX must be 0 to COUNT-1, COUNT 1 to "
                                 f"{MAX_SHARDS}")
    return Shard(index, count)


def shard_from(option: str | None, shard_count: int | None,
               env: Mapping[str, str] | None = None) -> Shard | None:
    """--shard, else Cloud Run Jobs' task variables, else a Kubernetes Indexed Job's index
    with --shard-count. None: not sharded."""
    env = os.environ if env is None else env
    if option:
        return parse_shard(option)
    if env.get("CLOUD_RUN_TASK_INDEX") and env.get("CLOUD_RUN_TASK_COUNT"):
        shard = parse_shard(f"{env['CLOUD_RUN_TASK_INDEX']}/{env['CLOUD_RUN_TASK_COUNT']}")
        return shard if shard.count > 1 else None
    if env.get("JOB_COMPLETION_INDEX"):
        if not shard_count:
            raise ConfigurationError("JOB_COMPLETION_INDEX is set: pass --shard-count too")
        return parse_shard(f"{env['JOB_COMPLETION_INDEX']}/{shard_count}")
    if shard_count:
        raise ConfigurationError("--shard-count goes with JOB_COMPLETION_INDEX or --shard")
    return None


def split_range(from_id: str | None, before_id: str | None, count: int) -> list[Part]:
    """`count` parts of [from_id, before_id) for parallel reads, cut evenly in the auto-ID
    key space (no read needed; for other ID shapes the parts may be uneven, never wrong:
    together they cover the range exactly)."""
    cuts = [cut for cut in key_space_boundaries(AUTO_ID_ALPHABET[0] * 20,
                                                AUTO_ID_ALPHABET[-1] * 20, count)
            if (from_id is None or cut > from_id) and (before_id is None or cut < before_id)]
    bounds = [from_id, *cuts, before_id]
    return [Part(low, high) for low, high in itertools.pairwise(bounds)]


def shard_range(boundaries: list[str], shard: Shard) -> tuple[str | None, str | None]:
    """(first ID included, first ID excluded) of a shard; None is the collection's end."""
    lower = boundaries[shard.index - 1] if shard.index > 0 else None
    upper = boundaries[shard.index] if shard.index < shard.count - 1 else None
    return lower, upper


def _first_id_from(collection: Any, from_id: str | None, policy: RetryPolicy) -> str | None:
    """The first document ID at or after `from_id`: one keys-only read."""
    page = read_page(collection, fields=KEYS_ONLY, size=1, after_id=None, from_id=from_id,
                     policy=policy)
    return page[0].id if page else None


def _approximate_last_id(collection: Any, first: str, policy: RetryPolicy) -> str:
    """The last ID's first characters, found by probing with ascending queries only
    (Firestore does not scan keys in descending order): one query per character shared
    with `first`, then a binary search over the alphabet for each of _DIGITS more."""
    prefix = ""
    while len(prefix) < len(first) and first[len(prefix)] in AUTO_ID_ALPHABET[:-1]:
        following = AUTO_ID_ALPHABET[AUTO_ID_ALPHABET.index(first[len(prefix)]) + 1]
        if _first_id_from(collection, prefix + following, policy) is not None:
            break
        prefix += first[len(prefix)]
    for _ in range(_DIGITS):
        low, high = -1, len(AUTO_ID_ALPHABET) - 1  # the answer is the largest index that exists
        while low < high:
            middle = (low + high + 1) // 2
            if _first_id_from(collection, prefix + AUTO_ID_ALPHABET[middle], policy) is not None:
                low = middle
            else:
                high = middle - 1
        if low < 0:
            break
        prefix += AUTO_ID_ALPHABET[low]
    return prefix


def _digits(text: str) -> list[int]:
    top = len(AUTO_ID_ALPHABET) - 1
    digits = [min(top, bisect.bisect_left(AUTO_ID_ALPHABET, c)) for c in text[:_DIGITS]]
    return digits + [0] * (_DIGITS - len(digits))


def key_fraction(doc_id: str | None, default: float) -> float:
    """Where an ID sits in the key space of auto IDs, from 0 to 1 (`default` for None):
    the measure parallel reads split evenly."""
    if doc_id is None:
        return default
    value = 0.0
    for place, digit in enumerate(_digits(doc_id), start=1):
        value += digit / len(AUTO_ID_ALPHABET) ** place
    return value


def share_read(parts: list[Part]) -> float:
    """How much of their ranges parallel reads have read, by the key space: each part
    from its start to its checkpoint."""
    done = total = 0.0
    for part in parts:
        start, end = key_fraction(part.from_id, 0.0), key_fraction(part.before_id, 1.0)
        total += max(0.0, end - start)
        done += max(0.0, min(end, key_fraction(part.checkpoint, start)) - start)
    return done / total if total > 0 else 0.0


def key_space_boundaries(first: str, last: str, count: int) -> list[str]:
    """count-1 increasing IDs that split [first, last] evenly, character by character."""
    prefix_length = 0
    while (prefix_length < min(len(first), len(last))
           and first[prefix_length] == last[prefix_length]):
        prefix_length += 1
    prefix = first[:prefix_length]
    base = len(AUTO_ID_ALPHABET)

    def number(text: str) -> int:
        value = 0
        for digit in _digits(text[prefix_length:]):
            value = value * base + digit
        return value

    low, high = number(first), number(last)
    boundaries = []
    for i in range(1, count):
        boundaries.append(prefix + key_of(low + (high - low) * i // count, _DIGITS))
    return boundaries


def key_of(value: int, length: int) -> str:
    """The `length` characters of AUTO_ID_ALPHABET that spell `value` in its base."""
    chars = []
    for _ in range(length):
        value, digit = divmod(value, len(AUTO_ID_ALPHABET))
        chars.append(AUTO_ID_ALPHABET[digit])
    return "".join(reversed(chars))


def _partition_boundaries(client: firestore.Client, collection: str,
                          count: int) -> list[str] | None:
    """Boundaries from a partition query, or None when it cannot give count-1 of them.

    Partition queries exist only on collection groups: documents of nested collections
    with the same name come back too, and their cursors are left out by path."""
    partitions = client.collection_group(collection).get_partitions(
        count * 4, retry=NO_LIBRARY_RETRY, timeout=call_timeout(PAGE_TIMEOUT_SECONDS))
    ids = []
    for partition in partitions:
        ref = partition.end_at
        if ref is not None and ref.parent.id == collection and ref.parent.parent is None:
            ids.append(ref.id)
    ids = sorted(set(ids))
    if len(ids) < count - 1:
        return None
    return [ids[(len(ids) + 1) * i // count - 1] for i in range(1, count)]


def compute_boundaries(client: firestore.Client, collection: str, count: int,
                       policy: RetryPolicy, warn: Callable[[str], None]) -> tuple[list[str], str]:
    """(boundaries, how they were found) for `count` shards of a top-level collection."""
    if count == 1:
        return [], KEY_SPACE
    try:
        found = _partition_boundaries(client, collection, count)
        if found is not None:
            return found, PARTITION_QUERY
        reason = "the partition query gave too few split points"
    except Exception as error:  # the emulator: 501 unimplemented; or any server error
        reason = f"partition queries are not available here ({type(error).__name__})"
    warn(f"{reason}: splitting the document-ID key space instead; shards are balanced for "
         "random IDs (Firestore's auto IDs), maybe not for other ID shapes")
    reference = client.collection(collection)
    first = _first_id_from(reference, None, policy)
    if first is None:
        return key_space_boundaries(AUTO_ID_ALPHABET[0], AUTO_ID_ALPHABET[-1], count), KEY_SPACE
    last = _approximate_last_id(reference, first, policy)
    return key_space_boundaries(first, max(first, last), count), KEY_SPACE
