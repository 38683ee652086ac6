"""What the wardrobe's runs count of the normalizer's reports: unknown terms per facet,
and values dropped (the engine's Tally)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from backfill.stats import ToolExtras
from normalizer import FACETS, NORMALIZED_VERSION, Report


class WardrobeTally:
    def __init__(self) -> None:
        self.unknown_terms: dict[str, Counter[str]] = {facet: Counter() for facet in FACETS}
        self.dropped_values = 0

    def add(self, report: Report) -> None:
        for facet, term in report.unknown:
            self.unknown_terms[facet][term] += 1
        self.dropped_values += len(report.dropped)

    def counts(self) -> dict[str, int]:
        """Carried across a resume: the run's whole count."""
        return {"dropped_values": self.dropped_values}

    def restore(self, counts: Mapping[str, Any]) -> None:
        self.dropped_values = int(counts.get("dropped_values", 0))

    def as_dict(self) -> dict[str, Any]:
        return {"unknown_terms": {facet: dict(counter.most_common())
                                  for facet, counter in self.unknown_terms.items()},
                "dropped_values": self.dropped_values}

    def rows(self) -> list[tuple[str, str]]:
        return [("Dropped values", str(self.dropped_values))] if self.dropped_values else []

    def item_lines(self, report: Report) -> list[str]:
        return [f"dropped {d.facet} value {d.value} ({d.reason})" for d in report.dropped]


# What the wardrobe's tools add to each run's stats file and ledger entry.
WARDROBE_EXTRAS = ToolExtras(tally=WardrobeTally,
                             recorded={"normalized_version": NORMALIZED_VERSION})
