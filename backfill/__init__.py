"""The Firestore machinery the scripts share: target and client, paging, writing with
preconditions, retries, the run ledger, a writing run's life, statistics and the log.

The normalizer (a pure package beside this one) knows nothing of Firestore. In this
package only the edge knows click: `cli.py` (options, confirmation, signals, typed errors
to exit codes) and `console.py` (what the operator sees); the engine raises typed errors
and reports through the Reporter of `writing_run.py`.
"""

from backfill.logs import defer_warnings

__version__ = "1.0.0"

# Before any third-party import: their warnings (google-auth warns about older grpcio
# versions at import time) go to the run log, not into what the operator reads.
defer_warnings()
