"""Every command group of ``gatekeeper``, registered on the root app in one place."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach each command group. One line per group keeps merges trivial."""
    from gatekeeper.cli import (
        access,
        admin,
        audit,
        console,
        demo,
        gov,
        identity,
        keys,
        ops,
        policy,
        process,
        release,
        review,
        temporal_auth,
    )

    app.add_typer(release.app, name="release")
    app.add_typer(review.app, name="review")
    app.add_typer(gov.app, name="gov")
    app.add_typer(ops.app, name="ops")
    app.add_typer(policy.app, name="policy")
    app.add_typer(keys.app, name="keys")
    app.add_typer(identity.app, name="identity")
    app.add_typer(access.app, name="access")
    app.add_typer(audit.app, name="audit")
    app.add_typer(temporal_auth.app, name="temporal-auth")
    process.register(app)
    admin.register(app)
    demo.register(app)
    console.register(app)
