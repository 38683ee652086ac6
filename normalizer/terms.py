"""Rule 2 to 6 for one string: split it, fold each piece, map it to a canonical term.

Everything here is a pure function of its arguments. The per-string result is memoised
(a bounded LRU cache of a pure function, so it is invisible from outside): the same
few hundred tag strings occur again and again across a wardrobe, and folding is the
hot path of the whole backfill.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from enum import Enum
from functools import lru_cache
from types import MappingProxyType
from typing import NamedTuple

from normalizer.tables import TABLES

CLOSED_FACETS = frozenset({"season"})
MAX_WORDS = 4
MAX_CHARS = 40
# Strings longer than this are not memoised: they are rare, and would make the cache
# hold a lot of memory for nothing.
_MAX_CACHED_LENGTH = 256

_SEPARATORS = re.compile(r"[,;/|]")


class Status(Enum):
    KNOWN = "known"  # a canonical term or a synonym of one
    UNKNOWN = "unknown"  # kept (open facets), reported so the tables can grow
    TOO_LONG = "too_long"  # a sentence, not a tag: dropped
    NOT_A_SEASON = "not_a_season"  # closed facet, no match: dropped


class Piece(NamedTuple):
    term: str  # canonical form when kept; the folded piece when dropped
    status: Status


KEPT = frozenset({Status.KNOWN, Status.UNKNOWN})


def _is_edge_junk(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith("P")


def _is_invisible(char: str) -> bool:
    """Format characters (zero-width spaces and joiners, byte-order and bidi marks) and
    controls other than white space: rule 3 removes them."""
    category = unicodedata.category(char)
    return category == "Cf" or (category == "Cc" and not char.isspace())


# The ASCII fast path: controls other than white space go (ASCII has no other invisible
# character), hyphens and underscores become spaces; the edges lose these characters.
_ASCII_TABLE: dict[int, str | None] = {
    **{code: None for code in [*range(0x20), 0x7F] if not chr(code).isspace()},
    ord("-"): " ", ord("_"): " "}
_ASCII_EDGE = "".join(c for c in map(chr, range(128)) if _is_edge_junk(c))


def fold(piece: str) -> str:
    """Rule 3: the folded form of one piece, with single spaces between words."""
    if piece.isascii():  # the usual case, and a fast one: no NFKC change, no accents
        return " ".join(piece.translate(_ASCII_TABLE).lower().split()).strip(_ASCII_EDGE)
    return fold_any(piece)


def fold_any(piece: str) -> str:
    """Rule 3 for any string, character by character (fold's path for non-ASCII)."""
    text = unicodedata.normalize("NFKC", piece)
    text = "".join(c for c in text if not _is_invisible(c)).casefold().lower()
    # Accents: decompose, drop the combining marks, recompose what is left (Hangul).
    text = unicodedata.normalize("NFKD", text)
    text = unicodedata.normalize(
        "NFC", "".join(c for c in text if not unicodedata.combining(c))
    )
    text = " ".join(text.replace("-", " ").replace("_", " ").split())
    start, end = 0, len(text)
    while start < end and _is_edge_junk(text[start]):
        start += 1
    while end > start and _is_edge_junk(text[end - 1]):
        end -= 1
    return text[start:end]


def _build_lookup(table: Mapping[str, list[str]]) -> Mapping[str, str]:
    """Folded term -> canonical term, for the canonical terms themselves and synonyms."""
    lookup: dict[str, str] = {}
    for canonical, synonyms in table.items():
        lookup[fold(canonical)] = canonical
        for synonym in synonyms:
            lookup[fold(synonym)] = canonical
    return MappingProxyType(lookup)


LOOKUPS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {facet: _build_lookup(table) for facet, table in TABLES.items()}
)


def _classify(lookup: Mapping[str, str], closed: bool, term: str) -> Piece:
    if len(term) > MAX_CHARS or term.count(" ") >= MAX_WORDS:
        return Piece(term, Status.TOO_LONG)
    canonical = lookup.get(term)
    if canonical is not None:
        return Piece(canonical, Status.KNOWN)
    if closed:
        return Piece(term, Status.NOT_A_SEASON)
    return Piece(term.replace(" ", "_"), Status.UNKNOWN)


def _split_and_classify(facet: str, text: str) -> tuple[Piece, ...]:
    # NFKC before splitting, so that a fullwidth comma separates like a comma (and no
    # term can come out with a separator inside it, which would break idempotence).
    pieces = _SEPARATORS.split(text if text.isascii() else unicodedata.normalize("NFKC", text))
    lookup, closed = LOOKUPS[facet], facet in CLOSED_FACETS
    return tuple(_classify(lookup, closed, term) for term in map(fold, pieces) if term)


_cached_split_and_classify = lru_cache(maxsize=65536)(_split_and_classify)


def clear_memo() -> None:
    """Forget the memoised strings (benchmarks measure the work itself)."""
    _cached_split_and_classify.cache_clear()


def pieces_of(facet: str, text: str) -> tuple[Piece, ...]:
    """Rules 2 to 6 for one string of one facet."""
    if len(text) <= _MAX_CACHED_LENGTH:
        return _cached_split_and_classify(facet, text)
    return _split_and_classify(facet, text)
