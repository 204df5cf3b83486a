#!/bin/sh
# First start of the alert store's PostgreSQL (docker-entrypoint-initdb.d): the walls' read-only
# user. The alert service's migrations grant it SELECT on the `alert_board` view only (0003).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v reader_password="$ALERTS_READER_PASSWORD" <<'SQL'
CREATE ROLE safecity_reader LOGIN PASSWORD :'reader_password';
REVOKE ALL ON SCHEMA public FROM safecity_reader;
GRANT USAGE ON SCHEMA public TO safecity_reader;
SQL
