"""`fleettop db upgrade|purge|rollup`."""

from __future__ import annotations

import argparse

from fleettop.config import LoadedConfig
from fleettop.errors import UsageError
from fleettop.store.db import Database, migrate, open_database, reporting_errors
from fleettop.store.repo import Repository


async def cmd_db(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    if args.action not in {"upgrade", "purge", "rollup"}:
        raise UsageError(f"unknown db action {args.action!r}")
    database = await open_database(loaded.settings, migrate_to_head=args.action != "upgrade")
    try:
        async with reporting_errors(database):
            repo = Repository(database, retention=loaded.settings.retention)
            if args.action == "upgrade":
                await _upgrade(database, repo)
            elif args.action == "purge":
                await _purge(repo)
            else:
                await _rollup(repo)
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


async def _purge(repo: Repository) -> None:
    keep = repo.retention.keep_days()
    purged = await repo.purge_expired()
    done = ", ".join(f"{purged[tier]} {WHAT[tier]} older than {keep[tier]} days" for tier in WHAT)
    await repo.audit("db.purge", "history", done)
    print(f"purged {done}")


async def _rollup(repo: Repository) -> None:
    """The rollups of the raw samples kept (those stored before the rollups existed)."""
    days = await repo.rebuild_rollups()
    await repo.audit("db.rollup", "history", f"{days} server-days of samples rolled up")
    print(f"rolled up {days} server-days of samples (the last {repo.retention.raw_days} days kept)")


WHAT = {"raw": "samples", "5m": "5-minute rows", "1h": "1-hour rows"}
