"""Helpers of the store tests (and the queue's): sample figures and servers, writes refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import insert, text

from fleettop import config
from fleettop.config import ServerConfig
from fleettop.domain import Counters, DiskUsage, Metrics, Sample
from fleettop.store import rollups
from fleettop.store.db import Database, open_database
from fleettop.store.repo import Repository
from fleettop.store.rows import insert_samples, sample_values, utcnow
from fleettop.store.tables import RunRow, SampleRow

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


async def store_sample(repo: Repository, server_id: int, metrics: Metrics, counters: Counters | None = None) -> bool:
    """A test's history: one sample written as a collection writes it (kept once per server
    and collected_at, its rollup buckets recomputed), without a run. False when the server
    has one at that collected_at already."""
    database = repo.database
    async with database.sessions.begin() as session:
        statement = insert_samples(database.dialect).values(sample_values(server_id, metrics, counters))
        inserted = (await session.execute(statement.returning(SampleRow.id))).scalar_one_or_none()
        await rollups.roll_up_samples(
            await session.connection(), [(server_id, metrics.collected_at)], oldest=repo.raw_cutoff()
        )
    return inserted is not None


async def start_run(repo: Repository, server_id: int, *, job_key: str, trigger: str, attempt: int = 1) -> int:
    """A run left 'running', as a worker's begin_collection starts one; its id."""
    statement = insert(RunRow).values(
        server_id=server_id, job_key=job_key, trigger=trigger, attempt=attempt, status="running", started_at=utcnow()
    )
    async with repo.database.sessions.begin() as session:
        return (await session.execute(statement.returning(RunRow.id))).scalar_one()


async def latest_sample(repo: Repository, server_id: int) -> Sample | None:
    return (await repo.latest_samples()).get(server_id)
