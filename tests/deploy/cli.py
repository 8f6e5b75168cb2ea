"""Running the deployment commands in a child process, as an operator or a container would.

They run through the real entry point (``python -m gatekeeper``), error boundary and all.
"""

from __future__ import annotations

import sys


def admin_command(*args: str) -> list[str]:
    """argv for ``gatekeeper <args>`` limited to the deployment commands."""
    return [sys.executable, "-m", "gatekeeper", *args]
