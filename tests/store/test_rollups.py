"""The rollups against real SQLite and PostgreSQL: hand-computed buckets, a bucket written twice,
late samples, two writers at once, and retention purging exactly what expired."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from store_helpers import add_server, metrics, store_sample

from fleettop.config import RetentionConfig, Settings
from fleettop.domain import DiskUsage, Metrics
from fleettop.rollup import DAY_S, FIVE_MINUTES, ONE_HOUR, RAW, Bucket, Point, ReadPlan, Stat, bucket_start
from fleettop.store import rollups
from fleettop.store.db import open_database
from fleettop.store.repo import Repository

# An hour that began a day ago: well inside the raw retention, whatever the clock says.
HOUR0 = bucket_start(int(time.time()) - DAY_S, 3600)


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(HOUR0 + seconds, UTC)


def sample(seconds: int, cpu: float, *, root: float = 40.0, data: float | None = None) -> Metrics:
    m = metrics(at(seconds), cpu=cpu, disk=max(root, data or 0))
    disks = [DiskUsage(mount="/", used_bytes=40, total_bytes=100, percent=root)]
    if data is not None:
        disks.append(DiskUsage(mount="/srv/data", used_bytes=1, total_bytes=100, percent=data))
    return m.model_copy(update={"disks": disks})


async def points(repo: Repository, server_id: int, metric: str, tier=FIVE_MINUTES, step: int = 300) -> list[tuple]:
    plan = ReadPlan(tier, step, HOUR0, HOUR0 + 3 * 3600)
    return [(p.at - HOUR0, p.n, p.min, p.avg, p.max) for p in await repo.history_points(server_id, metric, plan)]


async def test_buckets_by_hand_from_the_workers_and_from_a_stored_history(repo):
    sid = await add_server(repo)
    inputs = await repo.begin_collection(sid, "k1", trigger="scheduled", attempt=1, skip_disabled=False)
    await repo.finish_collection(inputs.run, sid, sample(0, 10.0, data=5.0), None)  # the workers' group commit
    for seconds, cpu in ((60, 30.0), (299, 20.0), (300, 90.0), (3600, 50.0)):
        await store_sample(repo, sid, sample(seconds, cpu, root=40.0 + seconds / 3600))
    assert await points(repo, sid, "cpu") == [
        (0, 3, 10.0, 20.0, 30.0),
        (300, 1, 90.0, 90.0, 90.0),
        (3600, 1, 50, 50, 50),
    ]
    assert await points(repo, sid, "cpu", ONE_HOUR, 3600) == [(0, 4, 10.0, 37.5, 90.0), (3600, 1, 50, 50, 50)]
    assert await points(repo, sid, "disk:/srv/data", ONE_HOUR, 3600) == [(0, 1, 5.0, 5.0, 5.0)]
    assert await points(repo, sid, "disk:/", ONE_HOUR, 3600) == [
        (0, 4, 40.0, 40.0 + 659 / 3600 / 4, 40 + 300 / 3600),
        (3600, 1, 41, 41, 41),
    ]
    # Raw samples read in 10-minute steps: the same figures, from the samples themselves.
    raw = await points(repo, sid, "cpu", RAW, 600)
    assert raw == [(0, 4, 10.0, 37.5, 90.0), (3600, 1, 50, 50, 50)]
    assert await repo.history_mounts(sid) == ["/", "/srv/data"]


async def test_a_bucket_written_twice_and_a_late_sample(repo):
    sid = await add_server(repo)
    await store_sample(repo, sid, sample(0, 10.0))
    await store_sample(repo, sid, sample(0, 10.0))  # the same sample again (a job run twice): kept once
    await store_sample(repo, sid, sample(3700, 70.0))
    assert await points(repo, sid, "cpu") == [(0, 1, 10, 10, 10), (3600, 1, 70, 70, 70)]
    await store_sample(repo, sid, sample(120, 30.0))  # late: after a later hour was written
    assert await points(repo, sid, "cpu") == [(0, 2, 10, 20, 30), (3600, 1, 70, 70, 70)]
    assert await points(repo, sid, "cpu", ONE_HOUR, 3600) == [(0, 2, 10, 20, 30), (3600, 1, 70, 70, 70)]


async def test_a_sample_older_than_the_raw_retention_leaves_its_bucket_alone(database):
    """Its bucket's other samples may be purged already: recomputing it from what is left
    would shrink it."""
    repo = Repository(database, retention=RetentionConfig(raw_days=1))
    sid = await add_server(repo)
    old = bucket_start(int(time.time()) - 3 * DAY_S, 300)
    await repo.write_rollups(FIVE_MINUTES, {sid: [Bucket(old, {"cpu": Stat(10, 100.0, 1.0, 30.0)})]})
    await store_sample(repo, sid, metrics(datetime.fromtimestamp(old + 10, UTC), cpu=99.0))
    plan = ReadPlan(FIVE_MINUTES, 300, old, old + 300)
    assert await repo.history_points(sid, "cpu", plan) == (Point(old, 10, 1.0, 10.0, 30.0),)


async def test_two_writers_at_once_give_every_sample_to_the_bucket(settings: Settings):
    """Two processes (two engines) write samples of one server into the same buckets at the
    same time: each bucket counts every sample, as if one had written them all."""
    first, second = await open_database(settings), await open_database(settings)
    try:
        writers = [Repository(first), Repository(second)]
        sid = await add_server(writers[0])

        async def write(repo: Repository, offset: int) -> None:
            for i in range(30):
                await store_sample(repo, sid, sample(offset + 20 * i, float(offset + 20 * i) / 10))

        await asyncio.gather(write(writers[0], 0), write(writers[1], 10))
        got = await points(writers[0], sid, "cpu", FIVE_MINUTES, 300)
        expected = [(start, 30, start / 10, (start + 145) / 10, (start + 290) / 10) for start in (0, 300)]
        assert [(a, n, lo, round(avg, 9), hi) for a, n, lo, avg, hi in got] == expected
        hour = await points(writers[1], sid, "cpu", ONE_HOUR, 3600)
        assert [(a, n, lo, round(avg, 9), hi) for a, n, lo, avg, hi in hour] == [(0, 60, 0.0, 29.5, 59.0)]
    finally:
        await first.close()
        await second.close()


async def test_retention_purges_exactly_what_expired(repo, monkeypatch):
    """In batches smaller than the rows (3 here): every sample older than its tier's cutoff
    goes, and every bucket that ends by it; the bucket that holds the cutoff stays."""
    monkeypatch.setattr(rollups, "PURGE_BATCH", 3)
    now = int(time.time())
    sids = [await add_server(repo, f"web{i}") for i in range(2)]
    keep = repo.retention.keep_days()
    edges = {tier.name: bucket_start(now - keep[tier.name] * DAY_S, tier.seconds) for tier in (FIVE_MINUTES, ONE_HOUR)}
    stat = Stat(1, 1.0, 1.0, 1.0)
    for tier in (FIVE_MINUTES, ONE_HOUR):
        edge = edges[tier.name]
        starts = [edge - tier.seconds * k for k in range(1, 5)] + [edge, edge + tier.seconds]
        await repo.write_rollups(
            tier, {sid: [Bucket(start, {"cpu": stat}, {"/": stat}) for start in starts] for sid in sids}
        )
    raw_edge = now - keep["raw"] * DAY_S
    for seconds in (-7200, -3600, -1, 1, 3600):
        await store_sample(repo, sids[0], metrics(datetime.fromtimestamp(raw_edge + seconds, UTC)))

    purged = await repo.purge_expired(now)

    assert purged == {"raw": 3, "5m": 2 * 2 * 4, "1h": 2 * 2 * 4}
    for tier in (FIVE_MINUTES, ONE_HOUR):
        edge = edges[tier.name]
        plan = ReadPlan(tier, tier.seconds, edge - 10 * tier.seconds, edge + 10 * tier.seconds)
        for sid in sids:
            assert [p.at for p in await repo.history_points(sid, "cpu", plan)] == [edge, edge + tier.seconds]
            assert [p.at for p in await repo.history_points(sid, "disk:/", plan)] == [edge, edge + tier.seconds]
    assert await repo.count_samples(sids[0]) == 2
    assert await repo.purge_expired(now) == {"raw": 0, "5m": 0, "1h": 0}


async def test_removing_a_server_removes_its_rollups(repo):
    sid = await add_server(repo)
    await store_sample(repo, sid, sample(0, 10.0))
    await repo.remove_server("web1")
    again = await add_server(repo)
    assert await points(repo, again, "cpu") == [] and await repo.history_mounts(again) == []
