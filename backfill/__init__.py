"""The Firestore machinery the three scripts share: target and client, paging, writing
with preconditions, retries, the run ledger, statistics and the log.

The normalizer (a pure package beside this one) knows nothing of Firestore; this package
knows nothing of click: the scripts on top turn its typed errors into exit codes.
"""

__version__ = "1.0.0"
