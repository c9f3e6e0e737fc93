"""Servers get tags (which `groups:` of the config give them settings) and a jump host.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

Both columns are NULL for the servers there are: no tag, and no jump host of their own (the
ssh config's ProxyJump, if any, applies as before).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.add_column(sa.Column("tags", sa.JSON(none_as_null=True), nullable=True))
        batch.add_column(sa.Column("jump", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.drop_column("jump")
        batch.drop_column("tags")
