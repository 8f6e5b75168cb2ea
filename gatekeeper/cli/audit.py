"""``gatekeeper audit``: export a release's dossier, and verify that a dossier was not altered."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gatekeeper.cli import common, stores
from gatekeeper.cli.session import releases
from gatekeeper.dossier import Dossier, DossierFormat, collect_dossier, render, verify_file
from gatekeeper.dossier.collect import journal_source
from gatekeeper.dossier.verify import Checks
from gatekeeper.errors import GatekeeperError, InputError
from gatekeeper.settings import Settings
from gatekeeper.text import for_terminal

if TYPE_CHECKING:
    from gatekeeper.adapters.anchors import AnchorStore
    from gatekeeper.adapters.audit_store import DatabaseAuditStore
    from gatekeeper.adapters.deliveries import DeliveryStore
    from gatekeeper.identity.heads import Anchor
    from gatekeeper.identity.keys import KeyRecord
    from gatekeeper.identity.registry import IdentityRegistry

app = typer.Typer(
    help="Export a release's dossier (Markdown, JSON, HTML) and verify its audit chain.",
    no_args_is_help=True,
)


@app.command()
def export(
    ctx: typer.Context,
    release_id: str = typer.Argument(
        ..., help="Release id (the 'release-' prefix the Temporal UI shows is optional)."
    ),
    fmt: DossierFormat | None = typer.Option(
        None,
        "--format",
        "-f",
        help="md (the default) or html for people; json to verify later.",
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the dossier to this file instead of stdout."
    ),
    json_: bool = typer.Option(
        False,
        "--json",
        help="Machine-readable: the JSON dossier on stdout (as --format json), or with --output "
        "a JSON summary of what was written.",
    ),
) -> None:
    """Write the release dossier: spec, policy and its hash, decisions with their signatures,
    government receipts and responses, grants and revocations, notifications sent, timeline."""
    settings = common.settings(ctx)
    if fmt is None:
        fmt = DossierFormat.JSON if json_ and output is None else DossierFormat.MD
    elif json_ and output is None and fmt is not DossierFormat.JSON:
        raise InputError(
            f"--json writes the JSON dossier on stdout; give --output FILE to write the "
            f"{fmt.value} one and get a JSON summary"
        )

    stores.note_missing_registry(
        settings, "the dossier lists no notifications and carries no key certificates or anchors"
    )

    async def go() -> Dossier:
        with (
            _registry(settings) as (identity, anchors),
            _deliveries(settings) as journal,
            _audit_store(settings) as chains,
        ):
            async with releases(settings) as api:
                return await collect_dossier(
                    api,
                    await api.resolve(release_id),
                    deliveries=journal.lines if journal is not None else None,
                    deliveries_source=journal_source(journal.url) if journal is not None else "",
                    key_chain=identity.chain_to_root if identity is not None else None,
                    anchors=anchors.anchors if anchors is not None else None,
                    anchors_source=anchors.url if anchors is not None else "",
                    sso_proof=identity.sso_link_entries if identity is not None else None,
                    audit_events=chains.read if chains is not None else None,
                )

    dossier = common.run(go())
    text = render(dossier, fmt)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as err:
        raise InputError(f"--output: cannot write {output}: {err}") from err
    if json_:
        common.print_json(
            {
                "release_id": dossier.release_id,
                "format": fmt.value,
                "output": str(output),
                "audit_events": len(dossier.audit),
                "audit_head": dossier.audit_head,
            }
        )
        return
    common.err_console.print(
        f"wrote the {fmt.value} dossier of {release_id} ({len(dossier.audit)} audit events, "
        f"head {dossier.audit_head[:16]}…) to {output}",
        markup=False,
    )


@app.command()
def verify(
    ctx: typer.Context,
    file: Path = typer.Argument(
        ..., help="A JSON dossier (audit export --format json) or an audit-store .jsonl file."
    ),
    trust_root: str | None = typer.Option(
        None,
        "--trust-root",
        metavar="KEY_ID",
        help="The root key id every key must chain to (default: [identity] trust_root).",
    ),
    anchors: bool | None = typer.Option(
        None,
        "--anchors/--no-anchors",
        help="Check against the anchors in the anchor table (the default when it can be "
        "reached), or only those the dossier carries.",
    ),
    unsigned: bool = typer.Option(
        False,
        "--unsigned",
        help="Accept an ended release no worker signed (from before signed heads).",
    ),
    json_: bool = typer.Option(
        False, "--json", help="Print the verdict as JSON (ok, events, head, message, bad_seq)."
    ),
) -> None:
    """Recompute the audit chain and re-check every signature, signed head and anchor against
    the pinned trust root, offline; exit 1 naming the first bad event or the fork."""
    settings = common.settings(ctx)
    root = trust_root or settings.config.identity.trust_root
    if root is not None and not _KEY_ID.fullmatch(root):
        raise InputError(f"--trust-root: {root!r} is not a key id (ed25519: and 32 hex digits)")
    checks = Checks(trust_root=root, unsigned_ok=unsigned)
    if anchors is not False:
        read = _read_anchors(settings, file, required=anchors is True)
        if read is not None:
            found, keys, where = read
            checks = Checks(
                trust_root=root,
                anchors=found,
                anchor_keys=keys,
                anchors_from=where,
                unsigned_ok=unsigned,
            )
    result = verify_file(file, checks)
    if json_:
        common.print_json(result)
    else:
        # The message quotes the file, which may be anybody's: no control character reaches
        # the terminal.
        common.console.print(for_terminal(result.message, one_line=True), markup=False)
    if not result.ok:
        raise typer.Exit(1)


_KEY_ID = re.compile(r"ed25519:[0-9a-f]{32}")


def _reachable(settings: Settings) -> bool:
    """Whether the registry database exists (a SQLite file is never created by verifying)."""
    url = settings.effective_registry_url
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).is_file()
    return True


@contextmanager
def _registry(settings: Settings) -> Iterator[tuple[IdentityRegistry | None, AnchorStore | None]]:
    """The identity registry and the anchor table, if the registry database can be opened."""
    if not _reachable(settings):
        yield None, None
        return
    from gatekeeper.adapters.anchors import AnchorStore
    from gatekeeper.identity.registry import IdentityRegistry

    try:
        identity = IdentityRegistry(settings.effective_registry_url)
    except GatekeeperError:
        yield None, None
        return
    try:
        anchors = AnchorStore(settings.effective_registry_url)
    except GatekeeperError:
        identity.close()
        yield None, None
        return
    try:
        yield identity, anchors
    finally:
        anchors.close()
        identity.close()


@contextmanager
def _deliveries(settings: Settings) -> Iterator[DeliveryStore | None]:
    """The send journal (every worker's deliveries), if the registry database can be opened."""
    if not _reachable(settings):
        yield None
        return
    from gatekeeper.adapters.deliveries import DeliveryStore

    try:
        store = DeliveryStore(settings.effective_registry_url)
    except GatekeeperError:
        yield None
        return
    try:
        yield store
    finally:
        store.close()


@contextmanager
def _audit_store(settings: Settings) -> Iterator[DatabaseAuditStore | None]:
    """The audit store (every release's chain), if the registry database can be opened: where
    a finished release's chain is read (without it, a worker is asked for it)."""
    if not _reachable(settings):
        yield None
        return
    from gatekeeper.adapters.audit_store import DatabaseAuditStore

    try:
        store = DatabaseAuditStore(settings.effective_registry_url)
    except GatekeeperError:
        yield None
        return
    try:
        yield store
    finally:
        store.close()


def _read_anchors(
    settings: Settings, file: Path, *, required: bool
) -> tuple[list[Anchor], list[KeyRecord], str] | None:
    """The anchors the anchor table holds for the dossier's release, the key records of their
    signers (up to the root, from the identity registry) and where they were read; ``None`` when
    the table cannot be reached (an error with ``--anchors``)."""
    release_id = _release_of(file)
    failure = ""
    if release_id is not None and _reachable(settings):
        try:
            with _registry(settings) as (identity, store):
                if identity is not None and store is not None:
                    found = store.anchors(release_id)
                    keys: list[KeyRecord] = []
                    for key_id in dict.fromkeys(a.head.key_id for a in found):
                        try:
                            keys += identity.chain_to_root(key_id)
                        except GatekeeperError:
                            continue
                    return found, keys, store.url
        except GatekeeperError as err:
            failure = f": {err}"
    if required:
        raise InputError(
            f"--anchors: the anchor table ({settings.effective_registry_url}) cannot be read"
            f"{failure or ' (no registry database there)'}"
        )
    return None


def _release_of(file: Path) -> str | None:
    """The release id a JSON dossier names (``None`` for anything else)."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    release_id = data.get("release_id") if isinstance(data, dict) else None
    return release_id if isinstance(release_id, str) else None
