"""The alert store: episodes, router state, outbox, users.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(200), primary_key=True),
        sa.Column("since", TS, primary_key=True),
        sa.Column("current", sa.Boolean, nullable=False),
        sa.Column("type", sa.String(48), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("district", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("acknowledged_at", TS),
        sa.Column("closed_at", TS),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("published_version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("record", sa.Text, nullable=False),
    )
    op.create_index("ix_alerts_status", "alerts", ["status", "severity"])
    op.create_index("ix_alerts_first_seen", "alerts", ["first_seen"])
    op.create_index("ix_alerts_district", "alerts", ["district", "first_seen"])
    op.create_index("ix_alerts_unpublished", "alerts", ["current", "published_version", "version"])
    op.create_table("routing", sa.Column("alert_id", sa.String(200), primary_key=True),
                    sa.Column("state", sa.Text, nullable=False))
    op.create_table("route_groups", sa.Column("key", sa.String(300), primary_key=True),
                    sa.Column("state", sa.Text, nullable=False))
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("receiver", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("target", sa.String(500), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("due", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS),
        sa.Column("error", sa.String(300), nullable=False, server_default=""),
        sa.UniqueConstraint("key", name="uq_outbox_key"),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "due"])
    op.create_table(
        "users",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in ("users", "outbox", "route_groups", "routing", "alerts"):
        op.drop_table(table)
