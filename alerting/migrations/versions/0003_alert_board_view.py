"""The walls' view of the alert store: ``alert_board``, the current episode of every alert with the
columns a wall shows (no evidence, no steps), and what a read-only wall user may see.

Grafana reads the store through this view only, as ``safecity_reader`` when that role exists
(deploy/postgres/init-reader.sh creates it): it is granted SELECT on the view and on nothing else,
so the users, sessions, outbox and the records' evidence stay out of its reach.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

READER = "safecity_reader"
SEVERITY_RANK = ("CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'warning' THEN 2 "
                 "WHEN 'maintenance' THEN 3 ELSE 4 END")
COLUMNS = ("alert_id, type, severity, status, device_id, district, site, first_seen, last_seen, acknowledged_at, "
           "closed_at, count")


def view_sql(dialect: str) -> str:
    if dialect == "postgresql":
        field = "(record::json ->> '{0}')"
        place = "((record::json -> 'place') ->> '{0}')::float"
    else:  # SQLite
        field = "json_extract(record, '$.{0}')"
        place = "CAST(json_extract(record, '$.place.{0}') AS REAL)"
    return (f"CREATE VIEW alert_board AS SELECT {COLUMNS}, {field.format('acknowledged_by')} AS acknowledged_by, "
            f"{field.format('assignee')} AS assignee, {place.format('lat')} AS latitude, "
            f"{place.format('lon')} AS longitude, {SEVERITY_RANK} AS severity_rank FROM alerts WHERE current")


GRANT_READER = (f"DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{READER}') THEN "
                f"GRANT SELECT ON alert_board TO {READER}; END IF; END $$")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(view_sql(dialect))
    if dialect == "postgresql":
        op.execute(GRANT_READER)


def downgrade() -> None:
    op.execute("DROP VIEW alert_board")
