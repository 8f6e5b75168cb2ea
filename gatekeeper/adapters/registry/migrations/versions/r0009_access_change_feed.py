"""The access change feed: a one-row clock every write to the access tables moves, and each
changed row stamped with the clock value its write took, so a reader applies only what changed.

Five tables feed access checks: ``partners``, ``people``, ``grants``, ``access_orders`` and
``public_launches``. Triggers on each (so writes from any code, or plain SQL, are caught):

- INSERT or UPDATE bumps ``access_clock.seq``, in the writing transaction, and stamps the row's
  ``change_seq`` with the new value: on SQLite by one per row; on PostgreSQL once per
  transaction (its first such write takes the next value and keeps it in a transaction-local
  setting, ``gatekeeper.access_seq``; every row it writes carries that value). Bumping the one
  clock row for each row of a 5,000-grant fan-out made it 2.2 times slower on PostgreSQL (each
  bump leaves a row version the next must step over), once per transaction 1.1 times.
  Every writer updates the one clock row, so writers' commits happen in ``seq`` order
  (PostgreSQL holds the row lock to commit; SQLite has one writer): a reader that reads the
  clock first and then the rows stamped after its last ``seq`` misses nothing.
- On PostgreSQL a statement-level BEFORE trigger takes the clock row before the statement locks
  any row of the five tables, so access writers lock rows only while holding the clock. A row
  trigger alone would take it after its row (a BEFORE row trigger runs with the row locked):
  a writer holding the clock and updating a grant that a second writer had locked while it
  waited for the clock deadlocked.
- DELETE (and, on PostgreSQL, TRUNCATE) bumps ``seq`` and ``epoch``: a reader cannot see a row
  that is gone, so it reloads everything. So does an UPDATE that changes what a reader keys the
  row by (a partner's or person's id; a grant's id, partner, model or surface): the reader
  cannot find the old place of a row that moved.
- the clock row itself refuses DELETE (writes to the access tables would then fail).

On SQLite a later migration that rebuilds one of these tables (batch mode "move and copy") must
create its triggers again: the rebuild drops them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

#: The five tables, each with the columns a reader keys its rows by.
TABLES: dict[str, tuple[str, ...]] = {
    "partners": ("id",),
    "people": ("id",),
    "grants": ("grant_id", "partner_id", "model_name", "surface"),
    "access_orders": (),
    "public_launches": (),
}

_BUMP = "UPDATE access_clock SET seq = seq + 1 WHERE id = 1"
_RELOAD = "UPDATE access_clock SET seq = seq + 1, epoch = epoch + 1 WHERE id = 1"
_CLOCK_KEPT = "the access clock row cannot be deleted"


def _moved(columns: tuple[str, ...], distinct: str) -> str:
    return " OR ".join(f"OLD.{c} {distinct} NEW.{c}" for c in columns)


def _sqlite(table: str, columns: tuple[str, ...]) -> list[str]:
    # SQLite cannot assign NEW in a trigger: stamp the row after writing it (recursive triggers
    # are off, so the stamping UPDATE does not fire the UPDATE trigger again).
    stamp = (
        f"{_BUMP}; UPDATE {table} SET change_seq = (SELECT seq FROM access_clock WHERE id = 1) "
        "WHERE rowid = NEW.rowid;"
    )
    statements = [
        f"CREATE TRIGGER {table}_access_insert AFTER INSERT ON {table} BEGIN {stamp} END",
        f"CREATE TRIGGER {table}_access_update AFTER UPDATE ON {table} BEGIN {stamp} END",
        f"CREATE TRIGGER {table}_access_delete AFTER DELETE ON {table} BEGIN {_RELOAD}; END",
    ]
    if columns:
        statements.append(
            f"CREATE TRIGGER {table}_access_moved AFTER UPDATE OF {', '.join(columns)} "
            f"ON {table} WHEN {_moved(columns, 'IS NOT')} BEGIN {_RELOAD}; END"
        )
    return statements


def _postgresql(table: str, columns: tuple[str, ...]) -> list[str]:
    statements = [
        f"CREATE TRIGGER {table}_access_take BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE "
        f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION access_clock_take()",
        f"CREATE TRIGGER {table}_access_stamp BEFORE INSERT OR UPDATE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION access_clock_stamp()",
        f"CREATE TRIGGER {table}_access_delete AFTER DELETE OR TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION access_clock_reload()",
    ]
    if columns:
        statements.append(
            f"CREATE TRIGGER {table}_access_moved AFTER UPDATE ON {table} FOR EACH ROW "
            f"WHEN ({_moved(columns, 'IS DISTINCT FROM')}) EXECUTE FUNCTION access_clock_reload()"
        )
    return statements


_SQLITE = [
    "CREATE TRIGGER access_clock_kept BEFORE DELETE ON access_clock "
    f"BEGIN SELECT RAISE(ABORT, '{_CLOCK_KEPT}'); END",
    *(s for table, columns in TABLES.items() for s in _sqlite(table, columns)),
]
#: The transaction's stamp: the clock bumped (and its row locked) by its first write, or then.
_PG_TAKE = (
    "DECLARE s bigint := NULLIF(current_setting('gatekeeper.access_seq', true), '')::bigint; "
    f"BEGIN IF s IS NULL THEN {_BUMP} RETURNING seq INTO s; "
    "PERFORM set_config('gatekeeper.access_seq', s::text, true); END IF; "
)
_POSTGRESQL = [
    "CREATE FUNCTION access_clock_take() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"{_PG_TAKE} RETURN NULL; END $$",
    "CREATE FUNCTION access_clock_stamp() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"{_PG_TAKE} NEW.change_seq := s; RETURN NEW; END $$",
    "CREATE FUNCTION access_clock_reload() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"{_RELOAD}; RETURN NULL; END $$",
    "CREATE FUNCTION access_clock_kept() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN RAISE EXCEPTION '{_CLOCK_KEPT}'; END $$",
    "CREATE TRIGGER access_clock_kept BEFORE DELETE ON access_clock "
    "FOR EACH ROW EXECUTE FUNCTION access_clock_kept()",
    *(s for table, columns in TABLES.items() for s in _postgresql(table, columns)),
]


def upgrade() -> None:
    op.create_table(
        "access_clock",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_access_clock_one_row"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_clock")),
    )
    op.execute("INSERT INTO access_clock (id, seq, epoch) VALUES (1, 0, 0)")
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("change_seq", sa.BigInteger(), server_default="0", nullable=False)
            )
        op.create_index(op.f(f"ix_{table}_change_seq"), table, ["change_seq"], unique=False)
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": _SQLITE, "postgresql": _POSTGRESQL}.get(dialect, []):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    on = dialect == "postgresql"
    for table in TABLES:
        for kind in ("insert", "update", "take", "stamp", "delete", "moved"):
            op.execute(
                f"DROP TRIGGER IF EXISTS {table}_access_{kind}{f' ON {table}' if on else ''}"
            )
    op.execute(f"DROP TRIGGER IF EXISTS access_clock_kept{' ON access_clock' if on else ''}")
    if on:
        for function in (
            "access_clock_take",
            "access_clock_stamp",
            "access_clock_reload",
            "access_clock_kept",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    for table in TABLES:
        op.drop_index(op.f(f"ix_{table}_change_seq"), table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("change_seq")
    op.drop_table("access_clock")
