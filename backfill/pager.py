"""Paging through a collection: ordered by document ID, cursor-based, a page at a time.

Never offsets (they are billed and slow), never order_by on a data field (documents
without it would be skipped), never the whole collection in memory. Every page is its
own short query, so a long scan never meets the stream deadline, and a failed page is
retried whole from the same cursor.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeAlias, TypeVar

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import BaseQuery
from google.cloud.firestore_v1.collection import CollectionReference
from google.cloud.firestore_v1.document import DocumentSnapshot
from google.cloud.firestore_v1.field_path import FieldPath

from backfill.ranges import Part
from backfill.retry import NO_LIBRARY_RETRY, RetryPolicy, call_timeout, call_with_retry
from backfill.target_field import Parent, TargetField

T = TypeVar("T")
DOCUMENT_ID = FieldPath.document_id()  # "__name__"
KEYS_ONLY: tuple[str, ...] = (DOCUMENT_ID,)
PAGE_TIMEOUT_SECONDS = 60.0
# What is read: a collection, or the subset of it some equality filters take (--where).
Items: TypeAlias = CollectionReference | BaseQuery


def collection_name(items: Items) -> str:
    if isinstance(items, CollectionReference):
        return str(items.id)
    return str(items._parent.id)


def snapshot_data(snap: DocumentSnapshot) -> dict[str, Any]:
    """A snapshot's fields, read-only. DocumentSnapshot.to_dict() deep-copies every
    document (a third of the run loop's CPU in a profile); nothing here mutates what it
    reads (a job decides; a task's own code gets a copy), so the snapshot's own data is
    used as it is."""
    data = getattr(snap, "_data", None)
    if isinstance(data, dict):
        return data
    return snap.to_dict() or {}


def read_page(collection: Items, *, fields: Sequence[str] | None, size: int,
              after_id: str | None, before_id: str | None = None, from_id: str | None = None,
              policy: RetryPolicy) -> list[DocumentSnapshot]:
    """One page of at most `size` documents with IDs after `after_id` (else from `from_id`
    on), and before `before_id`."""
    query: Any = collection
    if fields is not None:
        query = query.select(list(fields))
    query = query.order_by(DOCUMENT_ID).limit(size)
    if after_id is not None:
        query = query.start_after({DOCUMENT_ID: after_id})
    elif from_id is not None:
        query = query.start_at({DOCUMENT_ID: from_id})
    if before_id is not None:
        query = query.end_before({DOCUMENT_ID: before_id})

    def fetch() -> list[DocumentSnapshot]:
        return list(query.stream(retry=NO_LIBRARY_RETRY,
                                 timeout=call_timeout(PAGE_TIMEOUT_SECONDS)))

    return call_with_retry(fetch, policy, f"reading collection {collection_name(collection)!r}")


def iter_pages(collection: Items, *, fields: Sequence[str] | None,
               page_size: int, policy: RetryPolicy, after_id: str | None = None,
               before_id: str | None = None, from_id: str | None = None,
               limit: int | None = None) -> Iterator[list[DocumentSnapshot]]:
    """Pages in document-ID order, until the range (or `limit` documents) is done."""
    remaining = limit
    while remaining is None or remaining > 0:
        size = page_size if remaining is None else min(page_size, remaining)
        page = read_page(collection, fields=fields, size=size, after_id=after_id,
                         before_id=before_id, from_id=from_id, policy=policy)
        if not page:
            return
        yield page
        if len(page) < size:
            return
        after_id = page[-1].id
        if remaining is not None:
            remaining -= len(page)


class _End:
    pass


class _Failure(Generic[T]):
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Iterate `items` with up to `depth` of them fetched ahead in a background thread.

    The next page is read while the current one is being written. An error in the
    reader is raised in the consumer, at the point where the failed item would come.
    """
    return merged([items], depth)


def merged(sources: Sequence[Iterator[T]], depth: int = 1) -> Iterator[T]:
    """The items of several iterators, each read in a thread of its own, in the order
    they arrive; at most `depth` items per source wait to be consumed, so memory is
    bounded. A reader's error is raised in the consumer."""
    buffer: queue.Queue[T | _End | _Failure[T]] = queue.Queue(maxsize=depth * len(sources))
    stop = threading.Event()

    def put(entry: T | _End | _Failure[T]) -> bool:
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce(items: Iterator[T]) -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_End())
        except BaseException as error:  # handed to the consumer, who decides
            put(_Failure(error))

    readers = [threading.Thread(target=produce, args=(items,), name="page-prefetch",
                                daemon=True) for items in sources]
    for reader in readers:
        reader.start()
    running = len(readers)
    try:
        while running:
            entry = buffer.get()
            if isinstance(entry, _End):
                running -= 1
                continue
            if isinstance(entry, _Failure):
                raise entry.error
            yield entry
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=1.0)  # daemons; a read in progress must not hold up a stop


def part_pages(collection: Items, parts: Sequence[Part], *,
               fields: Sequence[str] | None, page_size: int, policy: RetryPolicy,
               before_each: Callable[[], None] | None = None,
               ) -> Iterator[tuple[list[DocumentSnapshot], int]]:
    """The pages of every part, read in parallel (one cursor each), with their part's
    index, in the order they arrive. Within a part, pages come in ID order.
    `before_each` is called before each page is read (a gate that may hold it)."""

    def pages_of(index: int, part: Part) -> Iterator[tuple[list[DocumentSnapshot], int]]:
        pages = iter_pages(collection, fields=fields, page_size=page_size, policy=policy,
                           after_id=part.checkpoint, from_id=part.from_id,
                           before_id=part.before_id)
        while True:
            if before_each is not None:
                before_each()
            page = next(pages, None)
            if page is None:
                return
            yield page, index

    return merged([pages_of(i, part) for i, part in enumerate(parts)])


def read_documents(client: Any, references: Sequence[Any], fields: Sequence[str] | None,
                   policy: RetryPolicy, what: str) -> list[DocumentSnapshot]:
    """The given documents (missing ones as snapshots that do not exist), in one round
    trip, with a field mask (None: whole), retried whole like a page."""
    mask = None if fields is None else list(fields)
    return call_with_retry(
        lambda: list(client.get_all(list(references), field_paths=mask,
                                    retry=NO_LIBRARY_RETRY,
                                    timeout=call_timeout(PAGE_TIMEOUT_SECONDS))),
        policy, what)


def id_range(query: BaseQuery, from_id: str | None, before_id: str | None) -> BaseQuery:
    """The documents of `query` with IDs from `from_id` (included) to `before_id` (excluded)."""
    if from_id is None and before_id is None:
        return query
    query = query.order_by(DOCUMENT_ID)
    if from_id is not None:
        query = query.start_at({DOCUMENT_ID: from_id})
    if before_id is not None:
        query = query.end_before({DOCUMENT_ID: before_id})
    return query


def count_documents(query: BaseQuery, policy: RetryPolicy) -> int:
    """An aggregation count() query: billed per 1,000 index entries, not per document."""

    def fetch() -> int:
        results = query.count(alias="n").get(retry=NO_LIBRARY_RETRY,
                                             timeout=call_timeout(PAGE_TIMEOUT_SECONDS))
        return int(results[0][0].value)

    return call_with_retry(fetch, policy, "counting documents")


def empty_collection_message(client: Any, target: Any, policy: RetryPolicy) -> str:
    """An empty collection is often a typo: what to say, with the collections there are
    (`target`: a backfill.target.Target)."""
    names = call_with_retry(lambda: sorted(c.id for c in client.collections()), policy,
                            "listing the collections")
    return (f"Collection {target.collection!r} is empty or does not exist in project "
            f"{target.project}, database {target.database}. Collections there: "
            f"{', '.join(names) if names else '(none)'}")


def with_parents(client: firestore.Client, snaps: Sequence[DocumentSnapshot],
                 target: TargetField, fields: Sequence[str],
                 policy: RetryPolicy) -> list[dict[str, Any]]:
    """Each snapshot's data; where the mask left the target's parent unseen, completed
    with the document's whole top-level parent field (one read for all of them). After
    this, `target.parent(data, masked=False)` is exact. (A document changed between the
    two reads is written with the first read's update_time, so its write is refused.)
    `fields`: the mask the snapshots were read with."""
    datas = [snapshot_data(snap) if snap.exists else {} for snap in snaps]
    if not target.nested or target.top in fields:  # the whole parent was read already
        return datas
    unseen = [i for i, (snap, data) in enumerate(zip(snaps, datas, strict=True))
              if snap.exists and target.parent(data)[0] is Parent.UNSEEN]
    read_tops(client, snaps, datas, unseen, (target.top,), policy,
              "reading the parent of the target field")
    return datas


def read_tops(client: firestore.Client, snaps: Sequence[DocumentSnapshot],
              datas: list[dict[str, Any]], indexes: Sequence[int], tops: Sequence[str],
              policy: RetryPolicy, what: str) -> None:
    """Complete `datas[i]` (the data of `snaps[i]`, read through a mask), for each of
    `indexes`, with the document's whole top-level fields `tops`: one read for all."""
    if not indexes:
        return
    fresh = {snap.id: snap for snap in read_documents(
        client, [snaps[i].reference for i in indexes], tops, policy, what)}
    for i in indexes:
        snap = fresh.get(snaps[i].id)
        whole = snapshot_data(snap) if snap is not None and snap.exists else {}
        datas[i] = {**datas[i], **{top: whole[top] for top in tops if top in whole}}
