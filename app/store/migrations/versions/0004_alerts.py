"""Alerts: one row per episode, the outbox of notifications to deliver, silences.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

`alert_hosts` holds, per server, the time of the last observation the alert rules judged: a
conditional update of it both orders concurrent evaluations of one server (the row stays
locked until the transaction ends) and skips an observation judged already.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
timestamp = sa.DateTime(timezone=True)
OPEN = sa.text("state <> 'resolved'")


def upgrade() -> None:
    op.create_table(
        "alert_hosts",
        sa.Column("server_id", sa.Integer(), sa.ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("evaluated_at", timestamp, nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", big_id, primary_key=True),
        sa.Column("server_id", sa.Integer(), sa.ForeignKey("servers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rule", sa.String(16), nullable=False),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("peak", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("started_at", timestamp, nullable=False),
        sa.Column("fired_at", timestamp, nullable=True),
        sa.Column("resolved_at", timestamp, nullable=True),
        sa.Column("notified_at", timestamp, nullable=True),
        sa.Column("acked_by", sa.String(255), nullable=True),
        sa.Column("acked_at", timestamp, nullable=True),
    )
    # At most one open episode per server, rule and label, whatever runs concurrently.
    op.create_index(
        "uq_alerts_open",
        "alerts",
        ["server_id", "rule", "label"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    op.create_index("ix_alerts_state_resolved", "alerts", ["state", "resolved_at"])
    op.create_table(
        "alert_outbox",
        sa.Column("id", big_id, primary_key=True),
        sa.Column("alert_id", big_id, sa.ForeignKey("alerts.id", ondelete="SET NULL"), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("event_at", timestamp, nullable=False),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("created_at", timestamp, nullable=False),
        sa.Column("next_try_at", timestamp, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(36), nullable=True),
        sa.Column("claimed_at", timestamp, nullable=True),
        sa.Column("sent_at", timestamp, nullable=True),
        sa.Column("failed_at", timestamp, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        # One message per event and URL, however many workers judged the sample.
        sa.UniqueConstraint("alert_id", "kind", "event_at", "target", name="uq_alert_outbox_event"),
    )
    op.create_index("ix_alert_outbox_due", "alert_outbox", ["sent_at", "failed_at", "next_try_at"])
    op.create_table(
        "silences",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("server_id", sa.Integer(), sa.ForeignKey("servers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rule", sa.String(16), nullable=True),
        sa.Column("until", timestamp, nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", timestamp, nullable=False),
    )
    op.create_index("ix_silences_until", "silences", ["until"])


def downgrade() -> None:
    op.drop_table("silences")
    op.drop_table("alert_outbox")
    op.drop_index("ix_alerts_state_resolved", "alerts")
    op.drop_index("uq_alerts_open", "alerts")
    op.drop_table("alerts")
    op.drop_table("alert_hosts")
