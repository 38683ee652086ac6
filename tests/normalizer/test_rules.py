"""One or more focused tests per rule of the spec."""

from __future__ import annotations

import datetime as dt

import pytest

from normalizer import (
    NORMALIZED_VERSION,
    Dropped,
    analyze_item,
    build_normalized,
    describe,
    fold,
    is_up_to_date,
    normalize_item,
)

NOW = dt.datetime(2025, 10, 7, 10, 30, 0, 123456, tzinfo=dt.UTC)


def facets(**overrides: list[str]) -> dict[str, list[str]]:
    base: dict[str, list[str]] = {"style": [], "occasion": [], "mood": [], "season": ["all"]}
    base.update(overrides)
    return base


# Rule 1: source and fallback
def test_fallback_only_when_the_field_yields_no_terms() -> None:
    item = {"style": [42, "A very long description of this garment"],
            "metadata": {"styleTags": ["Goth"], "occasionTags": "Gym"}}
    assert normalize_item(item) == facets(style=["gothic"], occasion=["workout"])


def test_mood_and_season_have_no_fallback() -> None:
    item = {"metadata": {"moodTags": ["Happy"], "seasonTags": ["Winter"]}}
    assert normalize_item(item) == facets()


def test_metadata_that_is_not_a_map_is_ignored() -> None:
    assert normalize_item({"metadata": "styleTags"}) == facets()


# Rule 2: values
@pytest.mark.parametrize("separator", [",", ";", "/", "|"])
def test_strings_split_on_every_separator(separator: str) -> None:
    assert normalize_item({"style": f"Casual{separator} Classic"})["style"] == [
        "casual", "classic"]


def test_tuples_contribute_like_lists() -> None:
    assert normalize_item({"occasion": ("Gym", "Office")})["occasion"] == ["workout", "work"]


def test_fullwidth_comma_separates_too() -> None:
    assert normalize_item({"style": "Casual，Classic"})["style"] == ["casual", "classic"]


def test_non_strings_are_dropped_and_reported() -> None:
    result, report = analyze_item({"style": [True, 1.5, {"a": 1}, ["x"], None, b"raw", "Edgy"]})
    assert result["style"] == ["edgy"]
    assert [d.reason for d in report.dropped] == ["not a string"] * 6
    assert {d.facet for d in report.dropped} == {"style"}


def test_a_whole_field_of_the_wrong_type_is_reported_once() -> None:
    _, report = analyze_item({"occasion": 7})
    assert report.dropped == [Dropped("occasion", "7", "not a string or list")]


def test_a_null_field_counts_as_missing_not_dropped() -> None:
    _, report = analyze_item({"style": None, "mood": None})
    assert report.dropped == []


# Rule 3: folding
@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("Élégant", "elegant"),
        ("ＣＡＳＵＡＬ", "casual"),  # fullwidth letters, by NFKC
        ("  Smart \t  Casual ", "smart casual"),
        ("business-casual", "business casual"),
        ("old_money", "old money"),
        ("¡Boho!", "boho"),
        ("...", ""),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),
        ("naïve café", "naive cafe"),
    ],
)
def test_fold(raw: str, folded: str) -> None:
    assert fold(raw) == folded


def test_a_sentence_is_dropped_and_reported() -> None:
    result, report = analyze_item({"style": ["one two three four five", "x" * 41, "a b c d"]})
    assert result["style"] == ["a_b_c_d"]
    assert [d.reason for d in report.dropped] == ["too long for a tag"] * 2


def test_forty_characters_is_still_a_tag() -> None:
    assert normalize_item({"style": ["y" * 40]})["style"] == ["y" * 40]


def test_empty_pieces_vanish_unreported() -> None:
    result, report = analyze_item({"style": ["", "  ", ",,", "-"]})
    assert result["style"] == [] and report.dropped == [] and report.unknown == []


# Rule 4 and 5: synonyms, canonical form
@pytest.mark.parametrize(
    ("facet", "raw", "canonical"),
    [
        ("style", "Biz Casual", "business_casual"),
        ("style", "Avant-Garde", "avant-garde"),
        ("style", "athleisure", "athletic"),
        ("occasion", "Day-to-Day", "everyday"),
        ("occasion", "Date Night", "date"),
        ("occasion", "Sports", "workout"),
        ("mood", "Self-assured", "confident"),
        ("mood", "cosy", "cozy"),
        ("season", "Year-Round", "all"),
        ("season", "Autumnal", "fall"),
    ],
)
def test_synonyms_map_to_their_canonical_term(facet: str, raw: str, canonical: str) -> None:
    assert normalize_item({facet: [raw]})[facet] == [canonical]


def test_synonyms_are_per_facet() -> None:
    item = {"style": ["Office"], "occasion": ["Office"]}
    assert normalize_item(item) == facets(style=["business"], occasion=["work"])


# Rule 6: unknown terms
def test_unknown_terms_in_open_facets_are_kept_and_reported() -> None:
    result, report = analyze_item({"style": ["Cottage Core"], "mood": ["Moody"]})
    assert result == facets(style=["cottage_core"], mood=["moody"])
    assert report.unknown == [("style", "cottage_core"), ("mood", "moody")]


def test_unknown_seasons_are_dropped_and_reported() -> None:
    result, report = analyze_item({"season": ["Rainy", "Winter"]})
    assert result["season"] == ["winter"]
    assert report.dropped == [Dropped("season", "'rainy'", "not a season")]


# Rule 7: duplicates
def test_duplicates_keep_the_first_in_source_order() -> None:
    item = {"style": ["Vintage", "Boho", "retro", "boho chic", "VINTAGE"]}
    assert normalize_item(item)["style"] == ["vintage", "bohemian", "retro"]


def test_unknown_terms_are_reported_once_per_item() -> None:
    _, report = analyze_item({"style": ["Cottage Core", "cottage-core"]})
    assert report.unknown == [("style", "cottage_core")]


# Rule 8: seasons
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["Spring", "Summer", "Fall"], ["spring", "summer", "fall"]),
        (["Spring", "Summer", "Fall", "Wintry"], ["all"]),
        (["Winter", "Any"], ["all"]),
        ([], ["all"]),
        ("Spring/Summer", ["spring", "summer"]),
    ],
)
def test_season_rules(raw: object, expected: list[str]) -> None:
    assert normalize_item({"season": raw})["season"] == expected


# Output map, timestamp, version
def test_build_normalized() -> None:
    built = build_normalized(facets(style=["casual"]), NOW)
    assert built == {**facets(style=["casual"]), "normalized_at": "2025-10-07T10:30:00Z",
                     "normalized_version": NORMALIZED_VERSION}


def test_normalized_at_is_converted_to_utc() -> None:
    paris = dt.timezone(dt.timedelta(hours=2))
    moment = dt.datetime(2025, 10, 7, 12, 30, 59, tzinfo=paris)
    assert build_normalized(facets(), moment)["normalized_at"] == "2025-10-07T10:30:59Z"


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_normalized(facets(), dt.datetime(2025, 1, 1))


# Skip rule
def test_up_to_date_item_is_skipped_whatever_its_timestamp() -> None:
    item: dict[str, object] = {"style": ["Casual"]}
    item["normalized"] = build_normalized(normalize_item(item), NOW)
    item["normalized"]["normalized_at"] = "1999-01-01T00:00:00Z"  # type: ignore[index]
    assert is_up_to_date(item)


@pytest.mark.parametrize(
    "normalized",
    [
        None,
        "casual",
        [],
        {},
        {**facets(style=["casual"]), "normalized_version": "0.9"},
        {**facets(style=["classic"]), "normalized_version": NORMALIZED_VERSION},
        {**facets(style=["casual"]), "season": "all", "normalized_version": NORMALIZED_VERSION},
        {"style": ["casual"], "normalized_version": NORMALIZED_VERSION},
    ],
    ids=["null", "string", "list", "empty map", "old version", "stale", "malformed", "missing"],
)
def test_items_that_are_not_up_to_date(normalized: object) -> None:
    assert not is_up_to_date({"style": ["Casual"], "normalized": normalized})


def test_is_up_to_date_accepts_precomputed_facets() -> None:
    item = {"style": ["Casual"], "normalized": build_normalized(facets(style=["casual"]), NOW)}
    assert is_up_to_date(item, facets(style=["casual"]))
    assert not is_up_to_date(item, facets(style=["classic"]))


def test_an_item_that_is_not_a_map_never_raises() -> None:
    assert normalize_item(None) == facets()  # type: ignore[arg-type]
    assert not is_up_to_date(None)  # type: ignore[arg-type]


def test_describe_never_raises_and_stays_short() -> None:
    class ReprFails:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    assert describe(ReprFails()).startswith("<ReprFails")
    assert len(describe("x" * 10_000)) < 80
    assert len(describe([[[[["deep"]]]]] * 100)) < 80
