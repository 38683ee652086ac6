"""A realistic, messy sample wardrobe, generated deterministically from a seed.

Shared by `make demo`, the benchmarks and the tests: the shapes the spec lists as seen
in the wild (string tags, nulls, mixed case, synonyms, `normalized: null`, missing
`mood`, numbers and maps in tags, accents, fullwidth letters, long sentences).
"""

from __future__ import annotations

import random
from typing import Any

STYLES = ["Casual", "casual", "Classic", "Boho Chic", "boho", "Business Casual",
          "business-casual", "Biz Casual", "Minimal", "Streetwear", "street style", "Sporty",
          "Goth", "Preppy", "Vintage", "Y2K", "Élégant", "ＣＡＳＵＡＬ", "Cottage Core",
          "Avant-Garde", "A very long description of this garment"]
OCCASIONS = ["Everyday", "daily", "Work", "office", "Gym", "Date Night", "Party",
             "going out", "Vacation", "at home", "Wedding Guest", "Brunch", "Festival"]
MOODS = ["Relaxed", "laid-back", "Confident", "Professional", "comfy", "Cosy", "Happy",
         "Bold", "Flirty", "Moody"]
SEASONS = ["all", "All Season", "Spring/Summer", "Autumn", "fall", "Winter", "summer",
           "Year-Round", "rainy"]
TYPES = ["top", "bottom", "dress", "shoes", "outerwear", "accessory"]
COLORS = ["black", "white", "navy", "beige", "red", "green"]


def _tags(rng: random.Random, pool: list[str]) -> Any:
    shape = rng.random()
    picked = rng.sample(pool, rng.randint(1, 3))
    if shape < 0.55:
        return picked
    if shape < 0.70:
        return ", ".join(picked)  # a plain string, the way an old app version wrote it
    if shape < 0.78:
        return []
    if shape < 0.84:
        return None
    if shape < 0.90:
        return [picked[0].upper(), picked[0], 3, None, ""]
    if shape < 0.93:
        return {"legacy": picked[0]}
    return picked[0]


def make_item(rng: random.Random, index: int) -> dict[str, Any]:
    """One wardrobe item; the document ID is chosen by the caller."""
    item: dict[str, Any] = {
        "name": f"Item {index}",
        "type": rng.choice(TYPES),
        "color": rng.choice(COLORS),
        "userId": f"user{rng.randint(1, 400):04d}",
        "createdAt": f"2023-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T12:00:00Z",
        "style": _tags(rng, STYLES),
        "occasion": _tags(rng, OCCASIONS),
        "season": rng.choice([["all"], "All Season", ["Spring/Summer"], ["Autumn", "Winter"],
                              _tags(rng, SEASONS)]),
    }
    if rng.random() < 0.7:  # older items have no mood: the app did not write it at first
        item["mood"] = _tags(rng, MOODS)
    if rng.random() < 0.3:
        item["metadata"] = {"styleTags": rng.sample(STYLES, 2),
                            "occasionTags": rng.sample(OCCASIONS, 1)}
    if rng.random() < 0.1:
        item["normalized"] = None  # left by an earlier rollback that set null
    if rng.random() < 0.6:
        item["id"] = f"legacy-{index}"  # some app versions wrote an `id` field, some did not
    return item


def make_wardrobe(count: int, seed: int = 7) -> list[tuple[str, dict[str, Any]]]:
    """(document ID, item) pairs: random-looking IDs, as Firestore's auto IDs are."""
    rng = random.Random(seed)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return [("".join(rng.choices(alphabet, k=20)), make_item(rng, i)) for i in range(count)]
