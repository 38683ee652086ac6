"""The vocabulary report: which tags the tables do not know yet, counted from real items.

Pure: items in, counts out. The script on top reads the items and writes the files.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from normalizer import FACETS, analyze_item
from normalizer.tables import TABLES

EXAMPLES_PER_TERM = 3


def within_one_edit(a: str, b: str) -> bool:
    """True when a and b differ by exactly one insertion, deletion or substitution."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1:] == b[i + 1:]
    return a[i:] == b[i + 1:]


def _known_terms(facet: str) -> dict[str, str]:
    """Every term the tables know for a facet, in stored form -> its canonical term."""
    known: dict[str, str] = {}
    for canonical, synonyms in TABLES[facet].items():
        known[canonical] = canonical
        for synonym in synonyms:
            known[synonym.replace(" ", "_")] = canonical
    return known


KNOWN: dict[str, dict[str, str]] = {facet: _known_terms(facet) for facet in FACETS}


def near_misses(facet: str, term: str) -> list[str]:
    """Known terms one edit away, as "known -> canonical" (a likely typo or variant)."""
    return sorted(f"{known} -> {canonical}" if known != canonical else known
                  for known, canonical in KNOWN[facet].items() if within_one_edit(term, known))


@dataclass
class VocabularyReport:
    items: int = 0
    unknown: dict[str, Counter[str]] = field(
        default_factory=lambda: {f: Counter() for f in FACETS})
    examples: dict[str, dict[str, list[str]]] = field(
        default_factory=lambda: {f: {} for f in FACETS})
    canonical: dict[str, Counter[str]] = field(
        default_factory=lambda: {f: Counter() for f in FACETS})
    empty: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)  # "facet: reason"

    def add(self, doc_id: str, item: dict[str, Any]) -> None:
        facets, report = analyze_item(item)
        self.items += 1
        unknown = set(report.unknown)
        for facet in FACETS:
            if not facets[facet]:
                self.empty[facet] += 1
            for term in facets[facet]:
                if (facet, term) in unknown:
                    self.unknown[facet][term] += 1
                    examples = self.examples[facet].setdefault(term, [])
                    if len(examples) < EXAMPLES_PER_TERM:
                        examples.append(doc_id)
                else:
                    self.canonical[facet][term] += 1
        for dropped in report.dropped:
            self.dropped[f"{dropped.facet}: {dropped.reason}"] += 1

    def empty_share(self, facet: str) -> float:
        return round(100.0 * self.empty[facet] / self.items, 2) if self.items else 0.0

    def rows(self) -> list[dict[str, Any]]:
        """One row per (facet, term): unknown terms first, most frequent first."""
        rows = []
        for facet in FACETS:
            for term, count in self.unknown[facet].most_common():
                rows.append({"facet": facet, "kind": "unknown", "term": term, "count": count,
                             "examples": self.examples[facet][term],
                             "near_misses": near_misses(facet, term)})
            for term, count in self.canonical[facet].most_common():
                rows.append({"facet": facet, "kind": "canonical", "term": term,
                             "count": count, "examples": [], "near_misses": []})
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "empty_share_percent": {f: self.empty_share(f) for f in FACETS},
            "dropped_values": dict(self.dropped.most_common()),
            "terms": self.rows(),
        }
