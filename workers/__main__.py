"""``python -m workers``: run one worker, exactly as ``gatekeeper worker`` does (for containers)."""

from __future__ import annotations

import sys

from gatekeeper.cli.main import run

if __name__ == "__main__":
    run(["worker", *sys.argv[1:]])
