"""The spec's worked cases (copied from shared/spec/cases.jsonl into this folder)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from normalizer import normalize_item

CASES_FILE = Path(__file__).with_name("cases.jsonl")
CASES: list[dict[str, Any]] = [
    json.loads(line) for line in CASES_FILE.read_text().splitlines() if line.strip()
]


def test_the_fixture_holds_the_cases() -> None:
    assert len(CASES) >= 21


@pytest.mark.parametrize("case", CASES, ids=[json.dumps(c["item"])[:60] for c in CASES])
def test_worked_case(case: dict[str, Any]) -> None:
    assert normalize_item(case["item"]) == case["expect"]
