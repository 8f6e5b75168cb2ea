#!/bin/sh
# Creates (first run) or updates (later runs) the workers' own role and database on the stack's
# PostgreSQL: role GATEKEEPER_DB_USER (login, no other privilege) owning database
# GATEKEEPER_DB_NAME, which no other role may connect to. Runs in the postgres image before any
# Gatekeeper service starts; every step is safe to repeat, and a changed GATEKEEPER_DB_PASSWORD
# is set again on the next `up`. Gatekeeper's own tables are made by the first worker that opens
# the database (alembic migrations, one history for every store).
#
# Connects as the server's superuser: PGHOST, PGPORT, PGUSER and PGPASSWORD (libpq variables).
set -eu

: "${GATEKEEPER_DB_NAME:=gatekeeper}" "${GATEKEEPER_DB_USER:=gatekeeper}"
: "${GATEKEEPER_DB_PASSWORD:?set GATEKEEPER_DB_PASSWORD}"

echo "gatekeeper-database: preparing role $GATEKEEPER_DB_USER and database $GATEKEEPER_DB_NAME"
# psql quotes the values itself (:'name' is a literal, %I an identifier): no shell interpolation
# ever reaches SQL.
psql -X -q -v ON_ERROR_STOP=1 -d postgres \
  -v db="$GATEKEEPER_DB_NAME" -v role="$GATEKEEPER_DB_USER" -v password="$GATEKEEPER_DB_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', :'role', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'role') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \gexec
SQL
echo "gatekeeper-database: ready"
