"""The alternatives `make bench` measures the tool against, each run as a command of its
own (so that each is timed, as the tool is, from the command to its exit):

    python -m tools.bench_contenders scan|one-by-one|sequential --batch-size N [--limit N]

with FIRESTORE_EMULATOR_HOST and GOOGLE_CLOUD_PROJECT set. Prints how many items it did.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from google.cloud import firestore

from backfill.pager import iter_pages
from backfill.retry import RetryPolicy
from normalizer import SOURCE_FIELD_PATHS, build_normalized, is_up_to_date, normalize_item

COLLECTION = "wardrobe"
POLICY = RetryPolicy()


def bare_read(client: firestore.Client, page_size: int) -> int:
    count = 0
    for page in iter_pages(client.collection(COLLECTION), fields=SOURCE_FIELD_PATHS,
                           page_size=page_size, policy=POLICY):
        count += len(page)
    return count


def one_by_one(client: firestore.Client, limit: int) -> int:
    """The previous script: read, then update each document and wait for the answer."""
    count = 0
    now = datetime.now(UTC)
    for page in iter_pages(client.collection(COLLECTION), fields=SOURCE_FIELD_PATHS,
                           page_size=min(limit, 500), policy=POLICY, limit=limit):
        for snap in page:
            item = snap.to_dict() or {}
            if not is_up_to_date(item):
                snap.reference.update({"normalized": build_normalized(normalize_item(item),
                                                                      now)})
            count += 1
    return count


def sequential(client: firestore.Client, page_size: int) -> int:
    """Read a page, commit its batch, then read the next."""
    count = 0
    now = datetime.now(UTC)
    for page in iter_pages(client.collection(COLLECTION), fields=SOURCE_FIELD_PATHS,
                           page_size=page_size, policy=POLICY):
        batch = client.batch()
        for snap in page:
            item = snap.to_dict() or {}
            if not is_up_to_date(item):
                batch.update(snap.reference, {"normalized": build_normalized(
                    normalize_item(item), now)}, option=client.write_option(
                        last_update_time=snap.update_time))
        batch.commit()
        count += len(page)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("contender", choices=["scan", "one-by-one", "sequential"])
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--limit", type=int, default=100, help="(one-by-one only)")
    args = parser.parse_args()
    client = firestore.Client()
    if args.contender == "scan":
        done = bare_read(client, args.batch_size)
    elif args.contender == "one-by-one":
        done = one_by_one(client, args.limit)
    else:
        done = sequential(client, args.batch_size)
    print(done)


if __name__ == "__main__":
    main()
