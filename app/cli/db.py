"""`fleettop db upgrade|purge`."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from fleettop.config import LoadedConfig
from fleettop.errors import UsageError
from fleettop.store.db import Database, migrate, open_database, reporting_errors
from fleettop.store.repo import Repository


async def cmd_db(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    if args.action not in {"upgrade", "purge"}:
        raise UsageError(f"unknown db action {args.action!r}")
    database = await open_database(loaded.settings, migrate_to_head=args.action == "purge")
    try:
        async with reporting_errors(database):
            if args.action == "upgrade":
                await _upgrade(database, Repository(database))
            else:
                await _purge(loaded, Repository(database))
    finally:
        await database.close()
    return 0


async def _upgrade(database: Database, repo: Repository) -> None:
    before = await database.revision()
    await migrate(database)
    after = await database.revision()
    if before == after:
        print(f"database {database.url} is up to date (revision {after})")
        return
    await repo.audit("db.upgrade", database.url, f"revision {before or 'none'} -> {after}")
    print(f"database {database.url} upgraded from revision {before or 'none'} to {after}")


async def _purge(loaded: LoadedConfig, repo: Repository) -> None:
    days = loaded.settings.retention.days
    cutoff = datetime.now(UTC) - timedelta(days=days)
    purged = await repo.purge_samples(cutoff)
    await repo.audit("db.purge", "samples", f"{purged} samples older than {days} days")
    print(f"purged {purged} samples older than {days} days ({cutoff:%Y-%m-%d %H:%M} UTC)")
