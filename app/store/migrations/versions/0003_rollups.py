"""Rollups: 5-minute and 1-hour buckets per server (and per mount) beside the raw samples.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

Each host table holds, per metric, the count, sum, minimum and maximum of the samples in a
bucket; each disk table the same of one mount's disk %. Buckets are epoch seconds (integers:
SQLite keeps no time zone). The rollups of samples already stored are not computed here:
`fleettop db rollup` does it, so an upgrade stays quick.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Copied, not imported: a migration must not change when the code does.
METRICS = ("cpu", "ram", "swap", "disk", "load1", "net_rx", "net_tx")


def upgrade() -> None:
    for name in ("rollup_5m", "rollup_1h"):
        op.create_table(
            name,
            sa.Column("server_id", sa.Integer(), sa.ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("bucket", sa.BigInteger(), primary_key=True),
            *(
                sa.Column(f"{metric}_{field}", sa.Integer() if field == "n" else sa.Float(), nullable=field != "n")
                for metric in METRICS
                for field in ("n", "sum", "min", "max")
            ),
        )
        op.create_index(f"ix_{name}_bucket", name, ["bucket"])
    for name in ("rollup_disk_5m", "rollup_disk_1h"):
        op.create_table(
            name,
            sa.Column("server_id", sa.Integer(), sa.ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("mount", sa.Text(), primary_key=True),
            sa.Column("bucket", sa.BigInteger(), primary_key=True),
            sa.Column("n", sa.Integer(), nullable=False),
            sa.Column("sum", sa.Float(), nullable=False),
            sa.Column("min", sa.Float(), nullable=False),
            sa.Column("max", sa.Float(), nullable=False),
        )
        op.create_index(f"ix_{name}_bucket", name, ["bucket"])


def downgrade() -> None:
    for name in ("rollup_disk_1h", "rollup_disk_5m", "rollup_1h", "rollup_5m"):
        op.drop_table(name)
