#!/bin/sh
# Creates (first run) or upgrades (later runs) Temporal's two PostgreSQL databases: persistence
# and visibility. Runs in temporalio/admin-tools before the server starts; every step is safe to
# repeat, so `docker compose up` may run it on every start.
set -eu

: "${DB:=postgres12}" "${DB_PORT:=5432}" "${POSTGRES_SEEDS:=postgresql}" "${POSTGRES_USER:=temporal}"
SCHEMA_ROOT=/etc/temporal/schema/postgresql/v12

sql() {
  temporal-sql-tool --plugin "$DB" --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" "$@"
}

for pair in temporal:temporal temporal_visibility:visibility; do
  database=${pair%%:*}
  schema=${pair##*:}
  echo "schema: preparing database $database"
  # `create` fails when the database exists; that is the normal case after the first start.
  sql --db "$database" create || echo "schema: database $database already exists"
  sql --db "$database" setup-schema -v 0.0
  sql --db "$database" update-schema -d "$SCHEMA_ROOT/$schema/versioned"
done
echo "schema: up to date"
