"""The collect job in one process: what it writes, idempotency, retries, pause, manual lane."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import pytest
from queue_helpers import service_for, wait_until
from saq.job import Job
from store_helpers import allow_samples, refuse_samples_of

from fleettop.config import LoadedConfig, Settings
from fleettop.queue import control
from fleettop.queue.contract import AttemptFailed
from fleettop.queue.jobs import collect, next_due
from fleettop.store.db import open_database
from fleettop.timing import scaled
from fleettop.wiring import open_service


async def test_collect_stores_a_sample_and_a_run_caches_it_and_tells_everyone(make_config, database_url, fleet):
    data = make_config(servers=["sim-0001"], database={"url": database_url})
    async with service_for(data, worker="manual") as service:
        server = (await service.resolve(["sim-0001"]))[0]
        seen = []

        async def listen():
            async for event in service.events():
                seen.append((event.kind, event.server_id))

        listener = asyncio.create_task(listen())
        try:
            await asyncio.sleep(0.2)  # subscribed before the collection
            await service.aggregate()  # cached now; the collection must invalidate it
            assert await service.cache.redis.exists(service.cache.prefix + "metrics:aggregated")

            assert await service.collect_now(["sim-0001"]) == 1
            await service.wait_collected([server], timeout=15)

            assert await service.repo.count_samples(server.id) == 1
            runs = await service.repo.recent_runs(server.id)
            assert [(run.status, run.trigger, run.attempt) for run in runs] == [("ok", "manual", 1)]
            key = f"{service.cache.prefix}metrics:latest:{server.id}"
            ttl = await service.cache.redis.ttl(key)
            assert 3595 <= ttl <= 3600  # cache.latest_ttl
            assert not await service.cache.redis.exists(service.cache.prefix + "metrics:aggregated")
            await wait_until(lambda: asyncio.sleep(0, ("sample", server.id) in seen), 5)
            assert ("queue", None) in seen and ("run", server.id) in seen
        finally:
            listener.cancel()

        (outcome,) = await service.manual_outcomes([server.id])
        assert outcome.status == "ok" and outcome.sample is not None


async def test_a_job_delivered_twice_stores_one_sample(make_config, database_url, fleet):
    data = make_config(servers=["sim-0002"], database={"url": database_url})
    async with service_for(data, worker=False) as service:
        server = (await service.resolve(["sim-0002"]))[0]
        job = Job(
            function="collect",
            key="twice",
            queue=service.context.lanes.manual,
            queued=1234,
            attempts=1,
            kwargs={"server_id": server.id, "trigger": "manual"},
        )
        ctx = {"job": job, "collect": service.context}
        assert await collect(ctx, server_id=server.id, trigger="manual") == {"status": "ok"}
        assert (await collect(ctx, server_id=server.id, trigger="manual"))["duplicate"] is True
        assert await service.repo.count_samples(server.id) == 1
        assert len(await service.repo.recent_runs(server.id)) == 1


async def test_a_manual_collection_is_not_retried_when_no_retry_can_help(make_config, short_dir, fleet):
    """Host key unknown: a person must check it and run `fleettop trust` first. A manual
    collection (someone waits for it) fails at its first attempt; a scheduled one keeps its
    retries (D5)."""
    unknown = short_dir / "empty_known_hosts"
    unknown.write_text("")
    data = make_config(servers=["sim-0001"], ssh={"known_hosts": str(unknown)})
    async with service_for(data, worker=False) as service:
        server = (await service.resolve(["sim-0001"]))[0]
        for trigger in ("manual", "scheduled"):
            job = Job(
                function="collect",
                key=trigger,
                queue=service.context.lanes.manual,
                queued=1234,
                attempts=1,
                retries=3,
                kwargs={"server_id": server.id, "trigger": trigger},
            )
            with pytest.raises(AttemptFailed, match="host key"):
                await collect({"job": job, "collect": service.context}, server_id=server.id, trigger=trigger)
            assert job.retryable is (trigger == "scheduled")
        statuses = {run.trigger: run.status for run in await service.repo.recent_runs(server.id)}
        assert statuses == {"manual": "failed", "scheduled": "retried"}
        assert (await service.stats()).failed == 1


@pytest.mark.slow
async def test_retries_wait_5_then_10_seconds_then_the_run_fails_once(make_config, fleet):
    """Three attempts of one collection are one failed run (D10), in SQL and in the cached
    counts the header and `queue stats` read beside a worker. The waits are the default
    backoff's (retry_backoff 5) on the tests' clock (fleettop.timing.scaled)."""
    data = make_config(servers=["sim-0003"])
    await fleet.stop("sim-0003")  # connection refused: every attempt fails at once
    async with service_for(data, worker="manual") as service:
        server = (await service.resolve(["sim-0003"]))[0]
        await service.collect_now(["sim-0003"])

        async def delayed() -> bool:
            return (await service.stats()).delayed == 1  # waiting out its first backoff

        await wait_until(delayed, scaled(5))
        await service.wait_collected([server], timeout=30)

        runs = sorted(await service.repo.recent_runs(server.id), key=lambda run: run.attempt)
        assert [(run.attempt, run.status) for run in runs] == [(1, "retried"), (2, "retried"), (3, "failed")]
        assert [run.trigger for run in runs] == ["manual", "retry", "retry"]
        assert all("sim-0003" in (run.error or "") for run in runs)
        waits = [(later.started_at - earlier.finished_at).total_seconds() for earlier, later in zip(runs, runs[1:])]
        # Exact backoff, up to the scheduler's quarter-second tick and a dequeue poll (no jitter).
        assert scaled(5) - 0.05 <= waits[0] <= scaled(5) + 1.0, waits
        assert scaled(10) - 0.05 <= waits[1] <= scaled(10) + 1.0, waits
        (outcome,) = await service.manual_outcomes([server.id])
        assert outcome.status == "failed" and "sim-0003" in outcome.error
        assert (await service.cache.run_counts())[
            "failed"
        ] == 1  # the snapshot taken in the backoff, and what ended since
        assert (await service.stats()).failed == 1
        assert [(run.server_name, run.attempt) for run in await service.failed_runs()] == [("sim-0003", 3)]
        row = await service.server_row(server.id)
        assert row.status == "down" and "sim-0003" in row.error
        await service.cache.forget(server.id)  # the same answer from SQL
        assert (await service.server_row(server.id)).status == "down"


@pytest.mark.slow
async def test_a_write_the_database_refuses_fails_only_its_job_which_succeeds_on_retry(
    make_config, database_url, fleet
):
    names = ["sim-0001", "sim-0002", "sim-0003", "sim-0004"]
    data = make_config(servers=names, database={"url": database_url})
    async with service_for(data, worker="manual") as service:
        servers = await service.resolve(names)
        refused = servers[1]
        database = await open_database(service.settings)
        try:
            await refuse_samples_of(database, refused.id)  # its writes share group commits with the others'
            await service.collect_now(names)

            async def first_attempt_failed() -> bool:
                return [run.status for run in await service.repo.recent_runs(refused.id)] == ["retried"]

            await wait_until(first_attempt_failed, 15)
            await allow_samples(database)
        finally:
            await database.close()
        await service.wait_collected(servers, timeout=30)

        for server in servers:
            runs = sorted(await service.repo.recent_runs(server.id), key=lambda run: run.attempt)
            assert await service.repo.count_samples(server.id) == 1
            if server is refused:
                assert [(run.attempt, run.status) for run in runs] == [(1, "retried"), (2, "ok")]
                assert "sample refused" in runs[0].error
                first_backoff = (runs[1].started_at - runs[0].finished_at).total_seconds()
                assert scaled(5) - 0.05 <= first_backoff <= scaled(5) + 1.0, first_backoff
            else:
                assert [(run.attempt, run.status) for run in runs] == [(1, "ok")]


async def test_one_dequeue_takes_a_job_for_every_slot_waiting_and_marks_them_as_saq_would(make_config, fleet):
    async with service_for(make_config(), worker=False) as service:
        queue = service.context.lanes.manual
        queue.worker_id = "worker-x"
        script, calls = queue._dequeue_script, []

        async def counted(*args, **kwargs):
            calls.append(kwargs["args"][1])  # how many it may take
            return await script(*args, **kwargs)

        queue._dequeue_script = counted
        holder = asyncio.create_task(queue.dequeue())  # finds nothing, and polls again after a pause
        await asyncio.sleep(0.05)
        waiting = [asyncio.create_task(queue.dequeue()) for _ in range(3)]  # three slots wait their turn
        await asyncio.sleep(0.05)
        assert await control.enqueue_manual(queue, service.cache, list(range(1, 5))) == 4
        assert await holder is None
        jobs = await asyncio.gather(*waiting)
        # The empty poll; one for two of the waiting slots (not three: no more than half of
        # the four queued, so another worker polling now gets its share); the third slot's.
        assert calls == [1, 3, 1]
        assert sorted(job.kwargs["server_id"] for job in jobs) == [1, 2, 3]
        for job in jobs:
            assert job.attempts == 0  # SAQ's Worker counts the attempt as it starts the job
            stored = await queue.job(job.key)
            assert (stored.status, stored.attempts, stored.worker_id) == ("active", 1, "worker-x")
        assert await queue.counts() == {"queued": 1, "active": 3, "incomplete": 4}


async def test_pause_holds_jobs_and_resume_releases_them(make_config, database_url, fleet):
    data = make_config(servers=["sim-0001", "sim-0002"], database={"url": database_url})
    async with service_for(data, worker="manual") as service:
        servers = await service.resolve(["sim-0001", "sim-0002"])
        await service.pause()
        assert await service.is_paused()
        assert await service.collect_now(None) == 2
        assert await service.collect_now(["sim-0001"]) == 0  # already queued by hand: no second job
        await asyncio.sleep(2)
        stats = await service.stats()
        assert stats.paused and stats.waiting >= 2 and stats.active == 0 and stats.completed == 0
        assert await service.repo.last_runs([server.id for server in servers]) == {}
        assert (await service.health()).worker == "paused"

        resumed = time.monotonic()
        await service.resume()
        await service.wait_collected(servers, timeout=10)
        assert time.monotonic() - resumed < 2
        assert (await service.stats()).completed >= 2
        entries = [entry.action for entry in await service.repo.audit_entries()]
        assert {"queue.pause", "queue.resume", "collect.all"} <= set(entries)


async def test_manual_collection_starts_within_a_second_behind_a_backlog(make_config, fleet):
    names = ["sim-0001", "sim-0002", "sim-0003", "sim-0004"]
    data = make_config(servers=names, worker={"concurrency": 1, "shutdown_grace": 0}, ssh={"command_timeout": 30})
    for name in names[1:]:
        fleet.freeze(name)  # these hold the one scheduled slot and make a backlog
    async with service_for(data, worker=True) as service:

        async def backlog():
            stats = await service.stats()
            return stats.active >= 1 and stats.waiting >= 2

        await wait_until(backlog, 10)
        target = (await service.resolve(["sim-0001"]))[0]
        asked = datetime.now(timezone.utc)
        assert await service.collect_now(["sim-0001"]) == 1
        await service.wait_collected([target], timeout=5)
        manual = [run for run in await service.repo.recent_runs(target.id) if run.trigger == "manual"]
        assert manual and manual[0].status == "ok"
        assert (manual[0].started_at - asked).total_seconds() < 1.0
        for name in names[1:]:
            fleet.freeze(name, False)


def test_next_due_keeps_the_grid():
    assert next_due(100, 10, 101) == 110
    assert next_due(100, 10, 115) == 120
    assert next_due(100, 10, 100) == 110
    assert next_due(100, 10, 1000) == 1010  # after a long pause: once, then back on the grid


async def test_a_first_run_without_config_or_servers_watches_localhost(make_config, short_dir):
    data = make_config(servers=[])
    settings = Settings.model_validate(data)
    first_run = LoadedConfig(settings=settings, path=short_dir / "missing.yaml", exists=False)
    async with open_service(first_run, worker=False) as service:
        await service.start_worker(schedule=False)
        (row,) = await service.list_servers()
        assert (row.server.name, row.server.transport, row.status) == ("localhost", "local", "unknown")
        assert await service.collect_now(["localhost"]) == 1
        await service.wait_collected([row.server], timeout=15)
        row = await service.server_row(row.server.id)
        assert row.status == "up" and row.latest.mem_percent > 0
