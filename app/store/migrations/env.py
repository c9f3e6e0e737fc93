"""Alembic environment: run only from fleettop.store.db, on the connection it shares.

fleettop.store.db opens an async connection and runs `command.upgrade` inside
`run_sync`, passing the sync connection in `config.attributes["connection"]`.
"""

from __future__ import annotations

from alembic import context

from fleettop.store.tables import Base


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("fleettop applies its migrations itself: run `fleettop db upgrade`")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
