"""The vocabulary report against hand-counted seeded data."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from scripts.vocabulary_report import main as vocabulary
from tests.conftest import Database
from tools.tcp_proxy import TcpProxy
from wardrobe.vocabulary import near_misses, within_one_edit

SEEDED = {
    "a": {"style": ["Cottage Core", "Boho"], "occasion": ["Festival"], "mood": ["Moody"]},
    "b": {"style": "cottage-core, Casual", "occasion": ["Gym"], "season": ["Rainy", "Autumn"]},
    "c": {"style": ["Bohemain"], "occasion": [], "mood": ["Chill", 3]},
    "d": {"name": "no tags at all"},
    "e": {"style": ["casual"], "occasion": "Festival; Work", "mood": ["moody", "Relaxd"]},
}


def test_within_one_edit() -> None:
    assert within_one_edit("relaxd", "relaxed") and within_one_edit("boho", "bobo")
    assert within_one_edit("goth", "gothx") and not within_one_edit("goth", "goth")
    assert not within_one_edit("goth", "gotham")
    assert near_misses("mood", "relaxd") == ["relaxed"]
    assert near_misses("style", "bohemain") == []  # a transposition is two edits
    assert near_misses("style", "gogh") == ["goth -> gothic"]


def test_counts_match_the_hand_computed_expectation(db: Database) -> None:
    db.seed(SEEDED)
    result = db.invoke(vocabulary, ["--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["items"] == 5
    rows = {(r["facet"], r["kind"], r["term"]): r for r in report["terms"]}
    unknown = {(f, t): r["count"] for (f, k, t), r in rows.items() if k == "unknown"}
    assert unknown == {("style", "cottage_core"): 2, ("style", "bohemain"): 1,
                       ("occasion", "festival"): 2, ("mood", "moody"): 2,
                       ("mood", "relaxd"): 1}
    canonical = {(f, t): r["count"] for (f, k, t), r in rows.items() if k == "canonical"}
    assert canonical == {("style", "bohemian"): 1, ("style", "casual"): 2,
                         ("occasion", "workout"): 1, ("occasion", "work"): 1,
                         ("mood", "relaxed"): 1, ("season", "fall"): 1, ("season", "all"): 4}
    assert rows[("style", "unknown", "cottage_core")]["examples"] == ["a", "b"]
    assert rows[("mood", "unknown", "relaxd")]["near_misses"] == ["relaxed"]
    # Empty: style on d; occasion on c, d; mood on b, d; season never (it defaults to all).
    assert report["empty_share_percent"] == {"style": 20.0, "occasion": 40.0, "mood": 40.0,
                                             "season": 0.0}
    assert report["dropped_values"] == {"season: not a season": 1, "mood: not a string": 1}
    [csv_file] = db.output_dir.glob("vocabulary_report_*.csv")
    with csv_file.open() as handle:
        csv_rows = list(csv.DictReader(handle))
    assert len(csv_rows) == len(report["terms"])
    assert {"facet": "style", "kind": "unknown", "term": "cottage_core", "count": "2",
            "examples": "a b", "near_misses": ""} in csv_rows
    assert "cottage_core                      2  a b" in result.stderr


def test_a_sample_reads_only_that_many(db: Database, proxy: TcpProxy) -> None:
    terms = [f"Term Number {n:04d}" for n in range(300)]  # about 6 kB of tags an item
    db.seed({f"i{n:02d}": {"style": terms} for n in range(30)})
    env = {**db.env, "FIRESTORE_EMULATOR_HOST": proxy.host}
    result = CliRunner().invoke(vocabulary, ["--json", "--sample-size", "7", "--output-dir",
                                             str(db.output_dir)], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["items"] == 7
    # Seven items' tags crossed the wire, and the keys of the rest: far from all thirty.
    item_bytes = len("".join(terms))
    assert 7 * item_bytes < proxy.bytes_received < 12 * item_bytes, proxy.bytes_received


@pytest.mark.parametrize("args, said", [
    (["--collection", "wardrobeTYPO"], "Collection 'wardrobeTYPO' is empty or does not exist "
     "in project {project}, database (default). Collections there: wardrobe: nothing to "
     "report"),
    (["--where", "userId=nobody"], "No item where userId = nobody. A value is compared as a "
     "string with FIELD=VALUE; a number or a boolean needs FIELD:=JSON (count:=3, "
     "active:=true): nothing to report"),
])
def test_an_empty_collection_or_subset_is_refused_as_validation_does(
        db: Database, args: list[str], said: str) -> None:
    """Before: exit 0, "Vocabulary of 0 items" and report files, where validation says
    the same case is a mistyped name: exit 2."""
    db.seed(SEEDED)
    result = db.invoke(vocabulary, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1] == "❌ " + said.format(project=db.project)
    assert not list(db.output_dir.glob("vocabulary_report_*"))
