"""What a value weighs on the wire, and cutting a sequence into parts that stay within a
size (and count) budget: write requests and journal documents both need it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def value_bytes(value: Any) -> int:
    """A generous estimate of a Firestore value's encoded size (tags, lengths, keys)."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass")) + 8
    if isinstance(value, bytes):
        return len(value) + 8
    if isinstance(value, dict):
        return 8 + sum(value_bytes(k) + value_bytes(v) + 8 for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return 8 + sum(value_bytes(v) + 4 for v in value)
    return 16


def within_budget(items: Iterable[T], cost: Callable[[T], int], budget: int,
                  max_count: int | None = None,
                  count: Callable[[T], int] = lambda item: 1) -> Iterator[list[T]]:
    """Consecutive runs of `items`, each costing at most `budget` (an item costing more
    than that on its own makes a run of its own) and counting at most `max_count` (an
    item counts `count(item)`: a group of entries, its entries)."""
    chunk: list[T] = []
    size = counted = 0
    for item in items:
        weight, number = cost(item), count(item)
        full = max_count is not None and counted + number > max_count
        if chunk and (full or size + weight > budget):
            yield chunk
            chunk, size, counted = [], 0, 0
        chunk.append(item)
        size += weight
        counted += number
    if chunk:
        yield chunk
