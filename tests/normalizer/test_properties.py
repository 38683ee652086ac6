"""Properties of the normalizer over arbitrary Firestore-like documents (Hypothesis)."""

from __future__ import annotations

import datetime as dt
import time
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normalizer import FACETS, analyze_item, build_normalized, is_up_to_date, normalize_item
from normalizer.terms import fold, fold_any

FOUR = {"spring", "summer", "fall", "winter"}
NOW = dt.datetime(2025, 10, 7, tzinfo=dt.UTC)


class GeoPointLike:
    """Stands for the client's GeoPoint and other foreign objects a document can hold."""

    def __init__(self, latitude: float, longitude: float) -> None:
        self.latitude, self.longitude = latitude, longitude


TAG_WORDS = st.sampled_from([
    "Casual", "BOHO", "boho chic", "Élégant", "Biz-Casual", "All Season", "autumn",
    "Spring/Summer", "date night", "laid_back", " Y2K ", "ＣＡＳＵＡＬ", "😀", "winter|fall",
    "A very long description of this garment", "", ",", "ß", "İstanbul", "x" * 300,
])
TEXT = st.one_of(TAG_WORDS, st.text(max_size=60), st.text(max_size=2000))
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), TEXT,
    st.binary(max_size=20), st.datetimes(timezones=st.just(dt.UTC)),
    st.builds(GeoPointLike, st.floats(-90, 90), st.floats(-180, 180)),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.tuples(children, children),
        st.dictionaries(st.text(max_size=10), children, max_size=4),
    ),
    max_leaves=20,
)
FACET_VALUES = st.one_of(VALUES, st.lists(st.one_of(TEXT, VALUES), max_size=8))
ITEMS = st.fixed_dictionaries(
    {},
    optional={
        "style": FACET_VALUES,
        "occasion": FACET_VALUES,
        "mood": FACET_VALUES,
        "season": FACET_VALUES,
        "metadata": st.one_of(VALUES, st.fixed_dictionaries(
            {}, optional={"styleTags": FACET_VALUES, "occasionTags": FACET_VALUES})),
        "normalized": VALUES,
        "name": VALUES,
    },
)


@settings(max_examples=400, deadline=None)
@given(ITEMS)
@pytest.mark.slow
def test_never_raises_and_terms_are_canonical(item: dict[str, Any]) -> None:
    result, report = analyze_item(item)
    assert list(result) == list(FACETS)
    for terms in result.values():
        assert len(terms) == len(set(terms))
        for term in terms:
            assert isinstance(term, str) and term
            assert term == term.lower()
            assert " " not in term
    season = result["season"]
    assert season == ["all"] or (season and set(season) <= FOUR and len(season) < 4)
    assert normalize_item(item) == result
    assert all(isinstance(d.value, str) for d in report.dropped)


@settings(max_examples=400, deadline=None)
@given(ITEMS)
@pytest.mark.slow
def test_idempotent(item: dict[str, Any]) -> None:
    once = normalize_item(item)
    assert normalize_item({**item, **once}) == once


@settings(max_examples=300, deadline=None)
@given(ITEMS, st.sampled_from(["style", "occasion", "mood"]), TAG_WORDS)
@pytest.mark.slow
def test_up_to_date_until_a_source_tag_changes(item: dict[str, Any], facet: str,
                                                new_tag: str) -> None:
    item = {**item, "normalized": build_normalized(normalize_item(item), NOW)}
    assert is_up_to_date(item)
    changed = {**item, facet: [new_tag, "zz-brand-new-tag"]}
    assert not is_up_to_date(changed)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*FACETS, "metadata"]), VALUES, max_size=5))
@pytest.mark.slow
def test_no_stored_tag_holds_a_control_or_invisible_character(item: dict[str, Any]) -> None:
    for terms in normalize_item(item).values():
        for term in terms:
            assert not any(unicodedata.category(c) in ("Cc", "Cf") for c in term), term


@given(st.lists(st.sampled_from(["\u200b", "\ufeff", "\u202e", "\u202c", "\x00", "\x07",
                                 "\u200d", "\u2060"]), max_size=6), st.sampled_from(
    ["Boho", "Casual", "Elegant", "date night"]))
def test_invisible_characters_anywhere_change_nothing(junk: list[str], word: str) -> None:
    spliced = "".join(j + c for j, c in zip(junk + [""] * len(word), word, strict=False))
    assert normalize_item({"style": [spliced + "".join(junk)]}) == normalize_item(
        {"style": [word]})


def test_normalizing_is_linear_in_the_number_of_tags() -> None:
    def seconds(count: int) -> float:
        item = {"style": [f"Tag Number {n}" for n in range(count)]}
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            normalize_item(item)
            best = min(best, time.perf_counter() - started)
        return best

    # Ten times the tags: about ten times the time (a quadratic rule 7 gave 100 times).
    assert seconds(20_000) / seconds(2_000) < 35


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=80))
def test_the_ascii_fast_path_folds_as_the_general_one(text: str) -> None:
    assert fold(text) == fold_any(text)
