"""The Firestore machinery the three scripts share: target and client, paging, writing
with preconditions, retries, the run ledger, statistics and the log.

The normalizer (a pure package beside this one) knows nothing of Firestore; this package
knows nothing of click: the scripts on top turn its typed errors into exit codes.
"""

from backfill.logs import defer_warnings

__version__ = "1.0.0"

# Before any third-party import: their warnings (google-auth warns about older grpcio
# versions at import time) go to the run log, not into what the operator reads.
defer_warnings()
