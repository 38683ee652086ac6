"""The engine: the Firestore machinery of any backfill, a wardrobe tool's or a Task's, in
layers (each imports only from those below it):

- the edge, the only modules that know click: `commands/` (the control, and `task.py`:
  `python3 -m backfill run|validate|rollback` of any Task), `cli.py` (the options built
  from `option_specs.py`, signals, typed errors to exit codes) and `console.py` (what
  the operator sees);
- a run: `writing_run.py` (the loop of one run) over `lifecycle.py` (its statuses'
  moves), `plan.py` (which run this is), `control.py` (pause, continue, stop, set),
  `run_view.py` (how a run is shown);
- the engine: `runner.py` (pages, decisions, writes, checkpoints) over `batch.py` (the
  contract with a job: its decisions, a batch's outcome), `task.py` (the public Task API
  and the job that runs one), `undo.py` (the exact undo of a run), `journal.py`,
  `ledger.py` (the run entry's one owner; a dry run's `NoRecord` records nothing),
  `lease.py`, `writer.py`, `pager.py`, `retry.py`, `ratelimit.py`;
- leaves: `clock.py`, `identity.py`, `limits.py` (the defaults and limits the options
  share), `fields.py` (field paths, ABSENT), `volume.py`, `ranges.py`, `fence.py`,
  `status.py`, `errors.py`, `version.py`.

No chain of imports among these modules is more than 8 deep (`__main__.py`, an entry
point as the scripts are, sits on top).

The engine knows no tool's data: the wardrobe (`wardrobe/`, beside this package) is a
tool of it, as any Task is; a tool hands the engine its job, its field's rules, its
tally of reports. The engine raises typed errors and reports through the Reporter of
`writing_run.py`; a run returns an `Outcome`, which only the CLI turns into an exit
code.
"""

from typing import TYPE_CHECKING, Any

from backfill.logs import defer_warnings
from backfill.version import __version__ as __version__

# Before any third-party import: their warnings (google-auth warns about older grpcio
# versions at import time) go to the run log, not into what the operator reads.
defer_warnings()

# The public API: a task, and what its changes() may write. Loaded when asked for, so
# that importing a leaf such as backfill.fields loads nothing more.
# (run_task, the edge's, is backfill.commands.task's: the package imports no edge.)
__all__ = ["DELETE_FIELD", "SERVER_TIMESTAMP", "Task", "__version__"]
if TYPE_CHECKING:
    from google.cloud.firestore_v1 import DELETE_FIELD, SERVER_TIMESTAMP

    from backfill.task import Task


def __getattr__(name: str) -> Any:
    if name == "Task":
        from backfill.task import Task
        return Task
    if name in ("DELETE_FIELD", "SERVER_TIMESTAMP"):
        from google.cloud.firestore_v1 import DELETE_FIELD, SERVER_TIMESTAMP
        return {"DELETE_FIELD": DELETE_FIELD, "SERVER_TIMESTAMP": SERVER_TIMESTAMP}[name]
    raise AttributeError(f"module 'backfill' has no attribute {name!r}")
