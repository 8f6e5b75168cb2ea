"""``python -m gatekeeper`` runs the CLI."""

from gatekeeper.cli.main import run

run()
