"""Long-term history figures: `python tests/bench/history_bench.py [--db sqlite|postgres|both]
[--servers N] [--demo N]`.

- rollup write cost per sample: the workers' group-committed writes (begin_collection +
  finish_collection, 50 servers a round) with the rollups (B) and with them turned off (A),
  in alternation; CPU of this process (which runs SQLite's work too; Postgres's own work is
  in its server processes and not counted) per sample, medians of the rounds.
- chart reads: the 30-day and 1-year chart of one server (200 points, cpu and a mount), over
  a year of rollups, median (min) of 30 reads each.
- database size per server-year at a 60 s interval with the default retention: 14 days of raw
  samples, 90 days of 5-minute rows, a year of hourly rows, one server with two mounts.
- the demo's year of history for N servers (fleettop.wiring.fill_demo_history), wall clock.

Uses a scratch SQLite file and, for Postgres, a scratch database on FLEETTOP_TEST_PG_URL
(default postgresql+asyncpg://postgres@127.0.0.1:5432/test's server)."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore", message="DSA is deprecated")

from sqlalchemy import insert, text  # noqa: E402

from fleettop.config import DatabaseConfig, ServerConfig, Settings  # noqa: E402
from fleettop.domain import DiskUsage, Metrics  # noqa: E402
from fleettop.probe.sim import SimFleet  # noqa: E402
from fleettop.rollup import DAY_S, FIVE_MINUTES, ONE_HOUR, bucket_start  # noqa: E402
from fleettop.store import repo as repo_module  # noqa: E402
from fleettop.store import rollups  # noqa: E402
from fleettop.store.db import open_database  # noqa: E402
from fleettop.store.repo import Repository  # noqa: E402
from fleettop.store.rows import sample_values  # noqa: E402
from fleettop.store.tables import SampleRow  # noqa: E402
from fleettop.wiring import fill_demo_history  # noqa: E402

PG_URL = os.environ.get("FLEETTOP_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
TABLES = ("samples", "rollup_5m", "rollup_1h", "rollup_disk_5m", "rollup_disk_1h")


def sample(at: datetime, i: int) -> Metrics:
    return Metrics(
        collected_at=at,
        cpu_percent=20 + i % 50,
        mem_percent=40 + i % 7,
        mem_used_bytes=4 << 30,
        mem_total_bytes=8 << 30,
        swap_percent=1.0,
        disk_percent=61.0,
        disks=[
            DiskUsage(
                mount="/", device="/dev/vda1", fstype="ext4", used_bytes=40 << 30, total_bytes=80 << 30, percent=52.6
            ),
            DiskUsage(
                mount="/srv/data",
                device="/dev/vdb",
                fstype="xfs",
                used_bytes=300 << 30,
                total_bytes=500 << 30,
                percent=61.0,
            ),
        ],
        load1=0.5,
        load5=0.4,
        load15=0.3,
        procs=200,
        uptime_s=86_400.0 + i,
        net_rx_bps=1e5,
        net_tx_bps=3e4,
    )


async def open_scratch(kind: str, scratch: Path) -> Any:
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{scratch / 'bench.db'}"
    else:
        import asyncpg

        admin = PG_URL.replace("postgresql+asyncpg://", "postgresql://", 1)
        conn = await asyncpg.connect(admin)
        await conn.execute("DROP DATABASE IF EXISTS fleettop_history_bench")
        await conn.execute("CREATE DATABASE fleettop_history_bench")
        await conn.close()
        url = PG_URL.rsplit("/", 1)[0] + "/fleettop_history_bench"
    return await open_database(Settings(data_dir=scratch, database=DatabaseConfig(url=url)))


async def collection(repo: Repository, server_id: int, key: str, metrics: Metrics) -> None:
    inputs = await repo.begin_collection(server_id, key, trigger="scheduled", attempt=1, skip_disabled=False)
    assert inputs is not None and inputs.run is not None
    await repo.finish_collection(inputs.run, server_id, metrics, None)


async def write_cost(repo: Repository, servers: int, rounds: int) -> tuple[float, float]:
    """CPU ms per sample of a round of `servers` collections written by the group commit,
    without (A) and with (B) the rollups, alternating; medians."""
    ids = [(await repo.add_server(ServerConfig(name=f"w{i:03d}", host="10.0.0.1"))).id for i in range(servers)]
    real = rollups.roll_up_samples

    async def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    costs: dict[str, list[float]] = {"A": [], "B": []}
    start = datetime.now(UTC) - timedelta(hours=6)
    for r in range(rounds):
        for side in ("A", "B"):
            repo_module.rollups.roll_up_samples = real if side == "B" else nothing  # type: ignore[assignment]
            at = start + timedelta(seconds=60 * (2 * r + (side == "B")))
            cpu = time.process_time()

            await asyncio.gather(
                *(collection(repo, server_id, f"{side}{r}-{i}", sample(at, i)) for i, server_id in enumerate(ids))
            )
            costs[side].append((time.process_time() - cpu) / servers * 1000)
    repo_module.rollups.roll_up_samples = real  # type: ignore[assignment]
    return statistics.median(costs["A"]), statistics.median(costs["B"])


async def reads(repo: Repository, database: Any) -> dict[str, tuple[float, float]]:
    """A year of one server's rollups (the demo's), then its 30-day and 1-year charts."""
    server = await repo.add_server(ServerConfig(name="reader", host="10.0.0.2"))
    fleet = SimFleet(11)
    await fill_demo_history(repo, fleet, {"sim-0011": server.id})  # sim-0011: two mounts, one filling
    mount = sorted(await repo.history_mounts(server.id))[0]
    now = datetime.now(UTC)
    figures = {}
    for label, span in (("30 d", 30 * DAY_S), ("1 y", 365 * DAY_S)):
        times = []
        for _ in range(30):
            started = time.perf_counter()
            for metric in ("cpu", f"disk:{mount}"):
                series = await repo.history_series(
                    server.id, metric, now - timedelta(seconds=span), now, max_points=200
                )
                assert series.points
            times.append((time.perf_counter() - started) / 2 * 1000)
        figures[label] = (statistics.median(times), min(times))
    return figures


async def size_per_server_year(repo: Repository, database: Any, scratch: Path) -> float:
    """MiB for one server: 14 days of raw samples a minute, 90 days of 5-minute rows, a year of hours."""
    server = await repo.add_server(ServerConfig(name="sized", host="10.0.0.3"))
    now = int(time.time())
    start = bucket_start(now, 60) - 14 * DAY_S
    rows = [
        sample_values(server.id, sample(datetime.fromtimestamp(start + 60 * i, UTC), i), None) for i in range(14 * 1440)
    ]
    async with database.engine.begin() as conn:
        for chunk in range(0, len(rows), 5000):
            await conn.execute(insert(SampleRow.__table__), rows[chunk : chunk + 5000])
    fleet = SimFleet(11)
    machine = fleet.host("sim-0011").machine  # two mounts
    hours, _ = machine.past(now, days=365, fine_days=0, seed=1)
    fine_days = 90
    _, fine = machine.past(now, days=fine_days, fine_days=fine_days, seed=1)
    await repo.write_rollups(ONE_HOUR, {server.id: hours})
    await repo.write_rollups(FIVE_MINUTES, {server.id: fine})
    async with database.engine.connect() as conn:
        if database.dialect == "sqlite":
            await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            total = 0
            for table in TABLES:
                total += (
                    await conn.execute(
                        text(
                            f"SELECT SUM(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_master WHERE tbl_name = '{table}')"
                        )
                    )
                ).scalar() or 0
            return total / 2**20
        total = 0
        for table in TABLES:
            total += (await conn.execute(text(f"SELECT pg_total_relation_size('{table}')"))).scalar() or 0
        return total / 2**20


async def demo(count: int, scratch: Path) -> tuple[float, float]:
    """Wall clock and this process's CPU (threads included: SQLite works in aiosqlite's)."""
    database = await open_scratch("sqlite", scratch)
    try:
        repo = Repository(database)
        fleet = SimFleet(count)
        ids = {}
        for name, _ in fleet.hosts:
            ids[name] = (await repo.add_server(ServerConfig(name=name, host="127.0.0.1"))).id
        cpu = time.process_time()
        wall = await fill_demo_history(repo, fleet, ids)
        return wall, time.process_time() - cpu
    finally:
        await database.close()


async def bench(kind: str, servers: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="fleettop-history-bench-") as scratch:
        database = await open_scratch(kind, Path(scratch))
        try:
            repo = Repository(database)
            without, with_ = await write_cost(repo, servers, rounds)
            print(
                f"{kind}: worker CPU per sample written, {servers} a round: {without:.2f} ms without rollups, "
                f"{with_:.2f} ms with (+{with_ - without:.2f} ms)"
            )
            for label, (median, low) in (await reads(repo, database)).items():
                print(f"{kind}: {label} chart read, one metric of one server, 200 points: {median:.1f} ms ({low:.1f})")
            size = await size_per_server_year(repo, database, Path(scratch))
            print(
                f"{kind}: database size per server-year at 60 s (14 d raw, 90 d 5m, 1 y 1h, 2 mounts): {size:.1f} MiB"
            )
        finally:
            await database.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--servers", type=int, default=50, help="collections a round (write cost)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--demo", type=int, default=100, help="servers of the demo's year (0: skip)")
    args = parser.parse_args()
    for kind in ("sqlite", "postgres") if args.db == "both" else (args.db,):
        asyncio.run(bench(kind, args.servers, args.rounds))
    if args.demo:
        with tempfile.TemporaryDirectory(prefix="fleettop-demo-bench-") as scratch:
            wall, cpu = asyncio.run(demo(args.demo, Path(scratch)))
        print(
            f"demo: a year of history for {args.demo} servers (1-hour rows, and 5-minute rows for the last week): "
            f"{wall:.1f} s wall, {cpu:.1f} s CPU"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
