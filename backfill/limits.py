"""Limits and defaults the options and the engine share. A leaf."""

MAX_PARALLEL_BATCHES = 16  # --parallel-batches, at the start or set while running
DEFAULT_PARALLEL_BATCHES = 4
CONTROL_POLL_SECONDS = 5.0  # how often a task reads its run's control field
RESUME_LATEST = "latest"  # --resume without a RUN_ID
