"""Wardrobe tag normalization: a pure function from an item to canonical tags.

No I/O, no clock, no third-party imports. The rules are ../shared/spec/normalization.md;
the vocabulary is the data in normalizer/tables.py.
"""

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
    is_up_to_date,
    normalize_item,
)
from normalizer.terms import fold

__all__ = [
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
    "is_up_to_date",
    "normalize_item",
]
