"""What makes the engine's tools the wardrobe's: its field (`normalized` by default;
metadata.normalized is what the app reads), the words its help uses, its --version."""

from __future__ import annotations

from dataclasses import replace

from backfill.cli import version_option_with
from backfill.options import RunOptions
from backfill.target_field import FieldRules
from normalizer import NORMALIZED_VERSION, SOURCE_FIELD_PATHS

WARDROBE_FIELD = "normalized"
APP_FIELD = "metadata.normalized"  # what the app's outfit filters read
# Never a field the rules read from: writing there would replace what the app wrote.
RULES = FieldRules(default=WARDROBE_FIELD, examples=f"{WARDROBE_FIELD} or {APP_FIELD}",
                   sources=SOURCE_FIELD_PATHS)
FIELD_WORDS = {"default_field": WARDROBE_FIELD, "app_field": APP_FIELD}
version_option = version_option_with(f"normalizer {NORMALIZED_VERSION}")


def wardrobe_options(options: RunOptions) -> RunOptions:
    """A run's options as the wardrobe's tools take them: with its field's rules."""
    return replace(options, field_rules=RULES)
