"""Helpers of the store tests (and the queue's): sample figures and servers, writes refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import text

from fleettop import config
from fleettop.config import ServerConfig
from fleettop.domain import DiskUsage, Metrics
from fleettop.store.db import Database, open_database
from fleettop.store.repo import Repository

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def metrics(
    at: datetime, cpu: float | None = 10.0, ram: float = 20.0, disk: float | None = 30.0, load1: float = 0.5
) -> Metrics:
    return Metrics(
        collected_at=at,
        cpu_percent=cpu,
        mem_percent=ram,
        mem_used_bytes=2 * 1024**3,
        mem_total_bytes=8 * 1024**3,
        swap_percent=1.5,
        disk_percent=disk,
        disks=[
            DiskUsage(mount="/", device="/dev/sda1", fstype="ext4", used_bytes=30, total_bytes=100, percent=disk or 0)
        ],
        load1=load1,
        load5=0.4,
        load15=0.3,
        procs=123,
        uptime_s=86400.5,
        net_rx_bps=1000.0,
        net_tx_bps=None,
    )


async def add_server(repo: Repository, name: str = "web1", **fields) -> int:
    server = await repo.add_server(ServerConfig(name=name, host=fields.pop("host", "10.0.0.1"), **fields))
    return server.id


async def refuse_samples_of(database: Database, server_id: int) -> None:
    """A real failure of the database for one server's writes: a trigger that aborts its sample."""
    async with database.engine.begin() as conn:
        if database.dialect == "postgresql":
            await conn.execute(
                text(
                    "CREATE FUNCTION refuse_sample() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'sample refused'; END $$"
                )
            )
            await conn.execute(
                text(
                    f"CREATE TRIGGER refuse BEFORE INSERT ON samples FOR EACH ROW WHEN (NEW.server_id = {server_id}) "
                    "EXECUTE FUNCTION refuse_sample()"
                )
            )
        else:
            await conn.execute(
                text(
                    f"CREATE TRIGGER refuse BEFORE INSERT ON samples WHEN NEW.server_id = {server_id} "
                    "BEGIN SELECT RAISE(ABORT, 'sample refused'); END"
                )
            )


async def allow_samples(database: Database) -> None:
    """Undo refuse_samples_of."""
    async with database.engine.begin() as conn:
        if database.dialect == "postgresql":
            await conn.execute(text("DROP TRIGGER refuse ON samples"))
            await conn.execute(text("DROP FUNCTION refuse_sample()"))
        else:
            await conn.execute(text("DROP TRIGGER refuse"))


def with_repo(config_path, action):
    """Run `action(repo)` against the test's database (tests here are sync: main() runs its own loop)."""

    async def go():
        database = await open_database(config.load(config_path, environ={}).settings)
        try:
            return await action(Repository(database))
        finally:
            await database.close()

    return asyncio.run(go())
