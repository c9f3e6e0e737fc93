"""A server's interval and thresholds may be NULL: it then takes `defaults:` at every start.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

Until now a server stored the defaults in force when it was added, as if its own. Which
stored values were typed by a user cannot be known; `servers add` without --interval (and
the first-run localhost) stored the built-in defaults, so a value equal to the built-in
default (interval 900, cpu 90, ram 95, disk 90) becomes NULL: inherited from now on. Other
values stay the server's own. Servers from the config file are rewritten at the next start.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The built-in defaults when 0001 was current (config.DefaultsConfig then), copied here so
# that this migration does not change if the defaults ever do.
BUILT_IN = {"interval": 900, "cpu_threshold": 90.0, "ram_threshold": 95.0, "disk_threshold": 90.0}
COLUMN_TYPES = {
    "interval": sa.Integer(),
    "cpu_threshold": sa.Float(),
    "ram_threshold": sa.Float(),
    "disk_threshold": sa.Float(),
}


def upgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        for column, type_ in COLUMN_TYPES.items():
            batch.alter_column(column, existing_type=type_, nullable=True)
    servers = sa.table("servers", *(sa.column(column, type_) for column, type_ in COLUMN_TYPES.items()))
    for column, value in BUILT_IN.items():
        op.execute(servers.update().where(servers.c[column] == value).values({column: None}))


def downgrade() -> None:
    servers = sa.table("servers", *(sa.column(column, type_) for column, type_ in COLUMN_TYPES.items()))
    for column, value in BUILT_IN.items():
        op.execute(servers.update().where(servers.c[column].is_(None)).values({column: value}))
    with op.batch_alter_table("servers") as batch:
        for column, type_ in COLUMN_TYPES.items():
            batch.alter_column(column, existing_type=type_, nullable=False)
