"""The vocabulary, as data.

How to read this file: each facet has one table. Each line of a table is
``"canonical_term": ["synonym", "synonym", ...],``. A synonym is written the way
it looks after folding (lowercase, no accents, hyphens and underscores as spaces),
a canonical term the way it is stored (spaces as underscores).

How to grow it: add a synonym to the list of its canonical term, or add a new
line for a new canonical term (with an empty list if it has no synonyms yet).
Any change that changes an output must also bump NORMALIZED_VERSION in
``normalizer/item.py``, so that the backfill rewrites the affected items.
"""

from __future__ import annotations

STYLE: dict[str, list[str]] = {
    "athletic": ["sport", "sports", "sporty", "athleisure", "activewear"],
    "avant-garde": ["avant garde"],
    "bohemian": ["boho", "boho chic", "bohemian chic"],
    "business": ["office", "corporate", "professional"],
    "business_casual": ["biz casual"],
    "casual": [],
    "classic": ["timeless"],
    "dark_academia": [],
    "edgy": [],
    "elegant": [],
    "formal": ["dressy"],
    "gothic": ["goth"],
    "minimalist": ["minimal", "minimalism", "minimalistic"],
    "old_money": [],
    "preppy": ["prep", "preppie"],
    "punk": [],
    "retro": [],
    "smart_casual": [],
    "statement": [],
    "streetwear": ["street", "street style", "street wear"],
    "trendy": [],
    "vintage": [],
    "y2k": [],
}

OCCASION: dict[str, list[str]] = {
    "beach": [],
    "brunch": [],
    "business": ["meeting", "meetings", "business meeting"],
    "date": ["date night", "dates"],
    "everyday": ["daily", "every day", "day to day", "daily wear", "everyday wear"],
    "formal": [],
    "interview": ["job interview"],
    "loungewear": ["lounge", "lounging", "lounge wear", "home", "at home"],
    "night_out": ["going out", "clubbing", "club"],
    "outdoor": ["outdoors", "hiking", "camping"],
    "party": ["parties", "celebration"],
    "travel": ["vacation", "vacay"],
    "wedding": ["wedding guest", "weddings"],
    "weekend": ["weekends"],
    "work": ["office", "workplace", "work wear", "workwear", "at work"],
    "workout": [
        "gym", "fitness", "exercise", "training", "sport", "sports", "athletic",
        "running", "yoga",
    ],
}

MOOD: dict[str, list[str]] = {
    "bold": ["daring"],
    "calm": ["serene", "peaceful", "tranquil"],
    "cheerful": ["happy", "joyful", "upbeat"],
    "comfortable": ["comfy"],
    "confident": ["self assured", "empowered", "powerful"],
    "cozy": ["cosy"],
    "elegant": [],
    "energetic": ["energized", "vibrant", "lively"],
    "playful": ["fun", "whimsical"],
    "professional": ["polished", "put together"],
    "relaxed": ["laid back", "laidback", "chill", "easygoing", "easy going", "mellow"],
    "romantic": ["flirty"],
}

# Season is a closed vocabulary: a term that maps to none of these is dropped.
SEASON: dict[str, list[str]] = {
    "spring": ["springtime"],
    "summer": ["summertime", "summery"],
    "fall": ["autumn", "autumnal"],
    "winter": ["wintertime", "wintry"],
    "all": [
        "all season", "all seasons", "allseason", "year round", "yearround",
        "all year", "all year round", "any", "any season", "4 seasons",
        "four seasons", "seasonless",
    ],
}

TABLES: dict[str, dict[str, list[str]]] = {
    "style": STYLE,
    "occasion": OCCASION,
    "mood": MOOD,
    "season": SEASON,
}
