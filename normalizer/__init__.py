"""Wardrobe tag normalization: a pure function from an item to canonical tags.

No I/O, no clock, no third-party imports. The rules are ../shared/spec/normalization.md;
the vocabulary is the data in normalizer/tables.py.
"""

from normalizer.check import (
    ABSENT,
    DEFAULT_PATH,
    is_term_list,
    is_up_to_date,
    is_valid_timestamp,
    problems,
    stored_value,
)
from normalizer.item import (
    FACETS,
    NORMALIZED_VERSION,
    SOURCE_FIELD_PATHS,
    Dropped,
    Facets,
    Report,
    analyze_item,
    build_normalized,
    describe,
    format_timestamp,
    normalize_item,
)
from normalizer.terms import fold

__all__ = [
    "ABSENT",
    "DEFAULT_PATH",
    "FACETS",
    "NORMALIZED_VERSION",
    "SOURCE_FIELD_PATHS",
    "Dropped",
    "Facets",
    "Report",
    "analyze_item",
    "build_normalized",
    "describe",
    "fold",
    "format_timestamp",
    "is_term_list",
    "is_up_to_date",
    "is_valid_timestamp",
    "normalize_item",
    "problems",
    "stored_value",
]
