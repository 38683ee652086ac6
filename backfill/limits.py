"""Limits and defaults the options and the engine share: a leaf, so that the options
need not import the modules that use them."""


MAX_PARALLEL_BATCHES = 16  # --parallel-batches, at the start or set while running
DEFAULT_PARALLEL_BATCHES = 4
CONTROL_POLL_SECONDS = 5.0  # how often a task reads its run's control field
RESUME_LATEST = "latest"  # --resume without a RUN_ID
TASK_TOOL = "task"  # the tool a task's runs are recorded as, in the ledger and the lease
LEASE_TIMEOUT_SECONDS = 120.0
HEARTBEAT_SECONDS = 15.0
DEFAULT_LEDGER_COLLECTION = "_backfill_runs"
LOG_FORMATS = ("auto", "text", "json")
NOTIFY_TIMEOUT_SECONDS = 5.0
RAMP_START = 500.0
RAMP_PERIOD_SECONDS = 300.0
MIN_WRITES_PER_SECOND = 0.1
MAX_SHARDS = 1000
ENVIRONMENTS = ("development", "staging", "production")
DEFAULT_COLLECTION = "wardrobe"
DEFAULT_DATABASE = "(default)"
TARGET_FIELD_VARIABLE = "BACKFILL_TARGET_FIELD"
