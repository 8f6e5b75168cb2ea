"""The release ledger: a release's state and every change to it, deterministic and free of
Temporal calls (``now`` is always passed in). :mod:`workflows.release` drives it."""
