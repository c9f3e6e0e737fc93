"""The rollup tables' SQL: 5-minute and 1-hour buckets written beside the raw samples, history
read from the tier a range needs, and retention purged in batches.

A bucket is always recomputed whole -- the 5-minute ones from the raw samples that fall in
them, the hours from their 5-minute buckets -- and written with an upsert that replaces the
row. So a bucket written twice, by two workers, or again after a late sample, is the same
row. On Postgres two transactions could each recompute a bucket without seeing the other's
uncommitted sample; a transaction-scoped advisory lock per server, taken after the sample is
written and held to the commit, orders them: the last to take it sees both samples. SQLite
has one writer at a time already. The bucket math is fleettop.rollup's (pure).
"""

from __future__ import annotations

import functools
import operator
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Table, bindparam, delete, func, select, text
from sqlalchemy.dialects import sqlite

from fleettop.rollup import (
    DISK_PREFIX,
    FIVE_MINUTES,
    HOST_METRICS,
    ONE_HOUR,
    RAW,
    Bucket,
    Point,
    Reading,
    ReadPlan,
    Stat,
    Tier,
    bucket_start,
    coarsen,
    points_of,
    roll_up,
)
from fleettop.store.tables import DISK_1H, DISK_5M, ROLLUP_1H, ROLLUP_5M, SampleRow

SAMPLES = SampleRow.__table__
# The raw column of each host metric.
RAW_COLUMNS = {
    "cpu": "cpu_percent",
    "ram": "mem_percent",
    "swap": "swap_percent",
    "disk": "disk_percent",
    "load1": "load1",
    "net_rx": "net_rx_bps",
    "net_tx": "net_tx_bps",
}
ROLLUP_LOCK = 0x726F6C6C  # "roll": pg_advisory_xact_lock(ROLLUP_LOCK, server_id)
PURGE_BATCH = 5000


TABLES: dict[str, tuple[Table, Table]] = {FIVE_MINUTES.name: (ROLLUP_5M, DISK_5M), ONE_HOUR.name: (ROLLUP_1H, DISK_1H)}


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _epoch(at: datetime) -> int:
    return int(at.timestamp()) if at.tzinfo else int(at.replace(tzinfo=UTC).timestamp())


def _insert(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    return sqlite.insert


# -- writes ----------------------------------------------------------------------------


async def roll_up_samples(conn: Any, touched: Iterable[tuple[int, datetime]], *, oldest: int) -> None:
    """Recompute, inside the caller's transaction, the 5-minute buckets these (server id,
    collected_at) samples fall in, and their hours. Buckets that start before `oldest` (epoch;
    the raw retention's cutoff) are left alone: their raw samples may be purged already."""
    keys = {(server_id, bucket_start(_epoch(at), FIVE_MINUTES.seconds)) for server_id, at in touched}
    keys = {(server_id, start) for server_id, start in keys if start >= oldest}
    if not keys:
        return
    if conn.dialect.name == "postgresql":
        await conn.execute(
            _LOCK_SERVERS, {"lock": ROLLUP_LOCK, "servers": sorted({server_id for server_id, _ in keys})}
        )
    width = FIVE_MINUTES.seconds
    readings: dict[int, list[Reading]] = defaultdict(list)
    # One query per bucket start (usually one: the batch's samples are of the same minutes),
    # of a fixed shape, so SQLAlchemy compiles it once.
    for start, server_ids in _by_start(keys).items():
        rows = await conn.execute(
            _SAMPLES_IN_BUCKET, {"servers": server_ids, "since": _at(start), "until": _at(start + width)}
        )
        for row in rows:
            readings[row.server_id].append(_reading(row))
    five = {server_id: roll_up(server_readings, width) for server_id, server_readings in readings.items()}
    await write_buckets(conn, FIVE_MINUTES, five)
    hours = {(server_id, bucket_start(start, ONE_HOUR.seconds)) for server_id, start in keys}
    await write_buckets(conn, ONE_HOUR, await _hours_from_five_minutes(conn, hours))


# Postgres: the servers' rollup locks, taken in one order (two batches never wait on each other in a circle).
_LOCK_SERVERS = text(
    "SELECT pg_advisory_xact_lock(:lock, server) FROM "
    "(SELECT unnest(CAST(:servers AS integer[])) AS server ORDER BY 1) AS ordered"
)
_SAMPLES_IN_BUCKET = select(
    SAMPLES.c.server_id,
    SAMPLES.c.collected_at,
    SAMPLES.c.disks,
    *(SAMPLES.c[column] for column in RAW_COLUMNS.values()),
).where(
    SAMPLES.c.server_id.in_(bindparam("servers", expanding=True)),
    SAMPLES.c.collected_at >= bindparam("since", type_=SAMPLES.c.collected_at.type),
    SAMPLES.c.collected_at < bindparam("until", type_=SAMPLES.c.collected_at.type),
)


def _by_start(keys: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    """(server id, bucket start) pairs as the server ids of each start."""
    grouped: dict[int, list[int]] = defaultdict(list)
    for server_id, start in sorted(keys):
        grouped[start].append(server_id)
    return grouped


def _reading(row: Any) -> Reading:
    disks = {disk["mount"]: float(disk["percent"]) for disk in row.disks or [] if disk.get("percent") is not None}
    return Reading(
        _epoch(row.collected_at), {metric: row._mapping[column] for metric, column in RAW_COLUMNS.items()}, disks
    )


async def _hours_from_five_minutes(conn: Any, hours: set[tuple[int, int]]) -> dict[int, list[Bucket]]:
    width = ONE_HOUR.seconds
    fine: dict[int, dict[int, Bucket]] = defaultdict(dict)
    for start, server_ids in _by_start(hours).items():
        values = {"servers": server_ids, "since": start, "until": start + width}
        for row in await conn.execute(_IN_HOURS[ROLLUP_5M.name], values):
            fine[row.server_id][row.bucket] = Bucket(row.bucket, _stats_of(row._mapping))
        for row in await conn.execute(_IN_HOURS[DISK_5M.name], values):
            bucket = fine[row.server_id].setdefault(row.bucket, Bucket(row.bucket))
            bucket.disks[row.mount] = Stat(row.n, row.sum, row.min, row.max)
    return {server_id: coarsen(buckets.values(), width) for server_id, buckets in fine.items()}


# The 5-minute rows of some servers in [since, until).
_IN_HOURS = {
    table.name: select(table).where(
        table.c.server_id.in_(bindparam("servers", expanding=True)),
        table.c.bucket >= bindparam("since"),
        table.c.bucket < bindparam("until"),
    )
    for table in (ROLLUP_5M, DISK_5M)
}


def _stats_of(row: Mapping[str, Any]) -> dict[str, Stat]:
    return {
        metric: Stat(row[f"{metric}_n"], row[f"{metric}_sum"], row[f"{metric}_min"], row[f"{metric}_max"])
        for metric in HOST_METRICS
        if row[f"{metric}_n"]
    }


# Each host metric's columns: (metric, (n, sum, min, max)).
_STAT_COLUMNS = [
    (metric, tuple(f"{metric}_{field}" for field in ("n", "sum", "min", "max"))) for metric in HOST_METRICS
]


async def write_buckets(conn: Any, tier: Tier, buckets: Mapping[int, Iterable[Bucket]]) -> None:
    """Upsert whole buckets (by server id) of a tier: a row written again is replaced."""
    host_table, disk_table = TABLES[tier.name]
    host_rows, disk_rows = [], []
    for server_id, server_buckets in buckets.items():
        for bucket in server_buckets:
            row: dict[str, Any] = {"server_id": server_id, "bucket": bucket.start}
            for metric, (n, total, low, high) in _STAT_COLUMNS:
                stat = bucket.metrics.get(metric)
                if stat is None:
                    row[n], row[total], row[low], row[high] = 0, None, None, None
                else:
                    row[n], row[total], row[low], row[high] = stat.n, stat.sum, stat.min, stat.max
            host_rows.append(row)
            disk_rows += [
                {
                    "server_id": server_id,
                    "mount": mount,
                    "bucket": bucket.start,
                    "n": s.n,
                    "sum": s.sum,
                    "min": s.min,
                    "max": s.max,
                }
                for mount, s in bucket.disks.items()
            ]
    for table, rows in ((host_table, host_rows), (disk_table, disk_rows)):
        if rows:
            sql, order = _upsert_sql(conn.dialect, table)
            # Straight to the driver's executemany, in the compiled statement's parameter
            # order: SQLAlchemy's per-row parameter processing cost ten times the database's
            # own work here (a year of rollups, 27,000 rows a server, for the demo).
            values = operator.itemgetter(*order)
            await conn.exec_driver_sql(sql, [values(row) for row in rows])


@functools.lru_cache(maxsize=32)
def _upsert_sql(dialect: Any, table: Table) -> tuple[str, tuple[str, ...]]:
    """The upsert of whole rows of a rollup table in this dialect's SQL, and its parameters' order."""
    key = [column.name for column in table.primary_key.columns]
    statement = _insert(dialect.name)(table)
    statement = statement.on_conflict_do_update(
        index_elements=key,
        set_={column.name: statement.excluded[column.name] for column in table.c if column.name not in key},
    )
    compiled = statement.compile(dialect=dialect, column_keys=[column.name for column in table.c])
    return str(compiled), tuple(compiled.positiontup or ())


# -- reads -----------------------------------------------------------------------------


async def read_points(conn: Any, server_id: int, metric: str, plan: ReadPlan) -> tuple[Point, ...]:
    """One metric's points over the plan's range, one per step, from the plan's tier."""
    if plan.tier == RAW:
        return await _raw_points(conn, server_id, metric, plan)
    host_table, disk_table = TABLES[plan.tier.name]
    if metric.startswith(DISK_PREFIX):
        table, prefix = disk_table, ""
        where = [table.c.mount == metric[len(DISK_PREFIX) :]]
    else:
        table, prefix = host_table, f"{metric}_"
        where = [table.c[f"{metric}_n"] > 0]
    step = bindparam("step", plan.step, type_=BigInteger)
    at = ((table.c.bucket // step) * step).label("at")
    query = (
        select(
            at,
            func.sum(table.c[f"{prefix}n"]).label("n"),
            func.sum(table.c[f"{prefix}sum"]).label("sum"),
            func.min(table.c[f"{prefix}min"]).label("min"),
            func.max(table.c[f"{prefix}max"]).label("max"),
        )
        .where(table.c.server_id == server_id, table.c.bucket >= plan.since, table.c.bucket < plan.until, *where)
        .group_by(at)
        .order_by(at)
    )
    return tuple(
        Point.of(int(row.at), Stat(int(row.n), float(row.sum), float(row.min), float(row.max)))
        for row in await conn.execute(query)
    )


async def _raw_points(conn: Any, server_id: int, metric: str, plan: ReadPlan) -> tuple[Point, ...]:
    columns = [
        SAMPLES.c.collected_at,
        SAMPLES.c.disks if metric.startswith(DISK_PREFIX) else SAMPLES.c[RAW_COLUMNS[metric]],
    ]
    query = select(*columns).where(
        SAMPLES.c.server_id == server_id,
        SAMPLES.c.collected_at >= _at(plan.since),
        SAMPLES.c.collected_at < _at(plan.until),
    )
    readings = []
    for at, value in await conn.execute(query):
        if metric.startswith(DISK_PREFIX):
            mounts = {disk["mount"]: float(disk["percent"]) for disk in value or [] if disk.get("percent") is not None}
            readings.append(Reading(_epoch(at), {}, mounts))
        else:
            readings.append(Reading(_epoch(at), {metric: value}))
    return points_of(roll_up(readings, plan.step), metric, plan.step)


async def disk_hours(
    conn: Any, server_ids: Iterable[int] | None, since: int
) -> dict[int, dict[str, list[tuple[int, float]]]]:
    """The hourly average disk % of each mount from `since` on, by server id (None: every
    server) and mount, oldest first."""
    query = (
        select(DISK_1H.c.server_id, DISK_1H.c.mount, DISK_1H.c.bucket, DISK_1H.c.sum, DISK_1H.c.n)
        .where(DISK_1H.c.bucket >= since)
        .order_by(DISK_1H.c.server_id, DISK_1H.c.mount, DISK_1H.c.bucket)
    )
    if server_ids is not None:
        query = query.where(DISK_1H.c.server_id.in_(sorted(set(server_ids))))
    found: dict[int, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for row in await conn.execute(query):
        found[row.server_id][row.mount].append((row.bucket, row.sum / row.n))
    return found


async def mounts_of(conn: Any, server_id: int) -> list[str]:
    """The mounts a server's hourly rollups know, by name."""
    query = select(DISK_1H.c.mount).where(DISK_1H.c.server_id == server_id).distinct().order_by(DISK_1H.c.mount)
    return list((await conn.execute(query)).scalars())


# -- retention -------------------------------------------------------------------------


async def purge_batch(conn: Any, tier: Tier, cutoff: int, batch: int | None = None) -> int:
    """Delete at most about `batch` expired rows of a tier, the oldest: raw samples taken
    before `cutoff` (epoch), buckets that end by it (one that holds the cutoff holds newer
    samples too: it stays). Whole buckets at a time, so a little more than `batch` when
    many servers share the last one. Returns the rows deleted; 0 when none is left."""
    batch = batch or PURGE_BATCH
    if tier == RAW:
        oldest = (
            select(SAMPLES.c.id)
            .where(SAMPLES.c.collected_at < _at(cutoff))
            .order_by(SAMPLES.c.collected_at)
            .limit(batch)
        )
        return (await conn.execute(delete(SampleRow).where(SAMPLES.c.id.in_(oldest)))).rowcount or 0
    last_expired = cutoff - tier.seconds  # the newest bucket start that ends by the cutoff
    deleted = 0
    for table in TABLES[tier.name]:
        # The bucket start of the batch-th oldest expired row: rows up to it go.
        edge = (
            select(table.c.bucket)
            .where(table.c.bucket <= last_expired)
            .order_by(table.c.bucket)
            .offset(batch - 1)
            .limit(1)
            .scalar_subquery()
        )
        upto = func.coalesce(edge, last_expired)
        result = await conn.execute(delete(table).where(table.c.bucket <= last_expired, table.c.bucket <= upto))
        deleted += result.rowcount or 0
    return deleted
