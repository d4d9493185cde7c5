#!/bin/sh
# The gateway's database roles, none a superuser (README "Tamper evidence against the service
# itself"): pgw_owner owns the database and its tables and is used by `pgw migrate` only;
# pgw_service is the service's, pgw_sequencer the audit sequencer's, both granted by
# `pgw migrate`. The postgres image runs this once, on an empty data directory; on an existing
# one run the same statements as an administrator.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v database="$POSTGRES_DB" -v owner_password="$PG_OWNER_PASSWORD" \
    -v service_password="$PG_SERVICE_PASSWORD" \
    -v sequencer_password="$PG_SEQUENCER_PASSWORD" <<'SQL'
CREATE ROLE pgw_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE pgw_service LOGIN PASSWORD :'service_password';
CREATE ROLE pgw_sequencer LOGIN PASSWORD :'sequencer_password';
ALTER DATABASE :"database" OWNER TO pgw_owner;
ALTER SCHEMA public OWNER TO pgw_owner;
SQL
