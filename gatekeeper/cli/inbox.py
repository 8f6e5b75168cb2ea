"""``gatekeeper review inbox``: the logic lives in :mod:`gatekeeper.inbox` (the console's Inbox
page uses it too); re-exported here for the CLI."""

from __future__ import annotations

from gatekeeper.inbox import Inbox, InboxItem, inbox_for, inbox_query, roster_roles, waits_for

__all__ = ["Inbox", "InboxItem", "inbox_for", "inbox_query", "roster_roles", "waits_for"]
