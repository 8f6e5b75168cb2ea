"""The reviewers' web console (``gatekeeper console``): server-rendered pages over the same
client API as the CLI (:class:`gatekeeper.releases.Releases`, :class:`gatekeeper.orders.Orders`,
:mod:`gatekeeper.inbox`). See docs/console.md.

Nothing here is an authority: every decision is checked by the worker again, and the console
only decides what it shows and which forms it offers.

``create_app`` and ``ConsoleSettings`` are loaded on first use, so importing the package (the
CLI does, for ``gatekeeper console``'s options) does not load the web stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gatekeeper.console.app import create_app
    from gatekeeper.console.settings import ConsoleSettings

__all__ = ["ConsoleSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from gatekeeper.console.app import create_app

        return create_app
    if name == "ConsoleSettings":
        from gatekeeper.console.settings import ConsoleSettings

        return ConsoleSettings
    raise AttributeError(name)
