"""The wardrobe's backfill: the normalized map (normalizer/) as a job of the engine
(backfill/), with its extras: its field (`normalized`, or metadata.normalized where the
app reads it), its own validation of the map, the vocabulary report, and the tally of
unknown terms and dropped values its runs keep."""
