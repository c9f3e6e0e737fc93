"""Real `fleettop --headless` processes sharing one Redis and one database."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
from pathlib import Path

import pytest
from queue_helpers import Fleettop, service_for, wait_until
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from fleettop.affinity import owner
from fleettop.config import Settings
from fleettop.queue.worker import OUTAGE_RETRY_S
from fleettop.redis_server import redis_server_binary
from fleettop.store.db import open_database
from fleettop.store.repo import Repository
from fleettop.timing import scaled

pytestmark = pytest.mark.slow


async def test_two_workers_collect_every_server_once_per_interval(make_config, short_dir: Path, fleet):
    names = ["sim-0001", "sim-0002", "sim-0003", "sim-0004"]
    data = make_config(servers=names, interval=10, worker={"concurrency": 2})
    config = short_dir / "config.yaml"
    workers = [await Fleettop.start(config, "--headless", name=f"worker{n}") for n in (1, 2)]
    try:
        async with service_for(data, worker=False) as service:
            servers = await service.resolve(names)

            async def all_collected_three_times():
                runs = [await service.repo.recent_runs(server.id, 10) for server in servers]
                return all(sum(run.status == "ok" for run in server_runs) >= 3 for server_runs in runs)

            await wait_until(all_collected_three_times, 40, step=0.5)
            stats = await service.stats()
            assert stats.scheduled == len(names)  # one live schedule link per server
            for server in servers:
                starts = sorted(
                    run.started_at for run in await service.repo.recent_runs(server.id, 10) if run.status == "ok"
                )
                gaps = [(later - earlier).total_seconds() for earlier, later in zip(starts, starts[1:])]
                # Once per interval (10 s on the tests' clock): never twice within one, never one skipped.
                assert all(scaled(10) - 0.5 <= gap <= scaled(10) + 1.0 for gap in gaps), (server.name, gaps)
    finally:
        codes = [await worker.stop() for worker in workers]
    assert codes == [0, 0], [worker.text()[-2000:] for worker in workers]
    logs = [worker.text() for worker in workers]
    # Each server is collected by the worker it belongs to (fleettop.affinity) once both run.
    ring = [re.search(r"worker (\S+) started", log).group(1) for log in logs]
    for server in servers:
        assert f"collected {server.name} " in logs[ring.index(owner(server.id, ring))], server.name
    assert not any("Traceback" in log for log in logs)


async def test_a_worker_killed_mid_job_leaves_nothing_active_and_the_collection_runs_again(
    make_config, short_dir: Path, fleet
):
    data = make_config(servers=["sim-0001"], interval=10, ssh={"command_timeout": 30})
    config = short_dir / "config.yaml"
    fleet.freeze("sim-0001")  # the first worker's job hangs in the probe
    doomed = await Fleettop.start(config, "--headless", name="doomed")
    async with service_for(data, worker=False) as service:
        server = (await service.resolve(["sim-0001"]))[0]

        async def running():
            last = (await service.repo.last_runs([server.id])).get(server.id)
            return last is not None and last.status == "running"

        await wait_until(running, 15)
        assert (await service.stats()).active == 1
        await doomed.stop(signal.SIGKILL)
        fleet.freeze("sim-0001", False)
        rescuer = await Fleettop.start(config, "--headless", name="rescuer")
        try:

            async def collected_again():
                return any(run.status == "ok" for run in await service.repo.recent_runs(server.id, 10))

            await wait_until(collected_again, 40, step=0.5)
            # The lost job was swept: the one that ran again is the same schedule link (oldest
            # first: the next links follow within seconds).
            runs = sorted(await service.repo.recent_runs(server.id, 10), key=lambda run: run.id)
            rerun = next(run for run in runs if run.status == "ok")
            assert rerun.attempt == 2 and rerun.trigger == "retry"
            lost = next(run for run in runs if run.attempt == 1)
            assert lost.status == "retried" and lost.error.startswith("lost")

            async def chain_waits_for_its_next_slot() -> bool:  # the interval is short: its link runs now and then
                stats = await service.stats()
                return stats.active == 0 and stats.scheduled == 1

            await wait_until(chain_waits_for_its_next_slot, scaled(10) + 5)  # nothing stuck; the chain goes on
        finally:
            assert await rescuer.stop() == 0


async def test_headless_exits_0_on_sigterm_and_returns_unfinished_jobs_to_the_queue(
    make_config, short_dir: Path, fleet
):
    names = ["sim-0001", "sim-0002", "sim-0003"]
    data = make_config(servers=names, interval=10, worker={"shutdown_grace": 1}, ssh={"command_timeout": 30})
    config = short_dir / "config.yaml"
    fleet.freeze("sim-0003")
    headless = await Fleettop.start(config, "--headless", name="headless")
    async with service_for(data, worker=False) as service:
        servers = await service.resolve(names)

        async def in_flight():
            lasts = await service.repo.last_runs([server.id for server in servers])
            runs = [lasts.get(server.id) for server in servers]
            return [run.status if run else None for run in runs] == ["ok", "ok", "running"]

        await wait_until(in_flight, 15)
        assert await headless.stop(signal.SIGTERM, timeout=15) == 0
        output = headless.text()
        assert "level=info" in output and "stopped" in output and "Traceback" not in output

        stats = await service.stats()
        assert stats.active == 0
        assert stats.scheduled == len(names)  # every server still has its schedule link: nothing lost
        stuck = servers[2]
        job = await service.context.lanes.scheduled.job(service.cache.job_key("scheduled", stuck.id))
        assert job is not None and job.status == "queued"  # back in the queue, to run again
        assert (await service.repo.last_runs([stuck.id]))[
            stuck.id
        ].status == "retried"  # the interrupted attempt, recorded
    fleet.freeze("sim-0003", False)


async def test_a_worker_rides_out_a_redis_outage(make_config, short_dir: Path, fleet):
    """Its own Redis (not the shared one) goes away and comes back empty: the worker
    logs it once, keeps running, and the reconcile rebuilds the schedule."""
    socket_path = short_dir / "outage.sock"

    async def start_redis():
        process = await asyncio.create_subprocess_exec(
            redis_server_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--save",
            "",
            "--daemonize",
            "yes",
            "--pidfile",
            str(short_dir / "outage.pid"),
            "--dir",
            str(short_dir),
        )
        assert await process.wait() == 0
        await wait_until(lambda: asyncio.sleep(0, socket_path.exists()), 5)

    async def stop_redis():
        # No retries: the server drops the connection as it exits (redis-py's default retries
        # would knock at the closed socket for 3 s, as fleettop.redis_server knows too).
        private = Redis(unix_socket_path=str(socket_path), retry=Retry(NoBackoff(), 0))
        with contextlib.suppress(RedisError, OSError):
            await private.shutdown(nosave=True)
        await private.aclose()

    await start_redis()
    data = make_config(servers=["sim-0001"], interval=10, redis={"url": f"unix://{socket_path}"})
    headless = await Fleettop.start(short_dir / "config.yaml", "--headless", name="outage")
    database = None
    try:
        await wait_until(lambda: asyncio.sleep(0, (Path(data["data_dir"]) / "fleettop.db").exists()), 10)
        database = await open_database(Settings.model_validate(data))
        repo = Repository(database)
        server = await wait_until(lambda: repo.get_server("sim-0001"), 10)

        async def ok_runs() -> int:
            return sum(run.status == "ok" for run in await repo.recent_runs(server.id, 10))

        await wait_until(ok_runs, 10)
        await stop_redis()
        # Both queues find Redis gone, then try again and again (every OUTAGE_RETRY_S).
        await wait_until(lambda: headless.text().count("redis unavailable (queue") >= 2, 10)
        await asyncio.sleep(5 * OUTAGE_RETRY_S)
        assert headless.process.returncode is None  # still running
        await start_redis()

        async def collected_again() -> bool:
            return await ok_runs() >= 2

        await wait_until(collected_again, 15, step=0.5)
    finally:
        if database is not None:
            await database.close()
        assert await headless.stop() == 0
        await stop_redis()
    log = headless.text()
    assert log.count("redis unavailable (queue") == 2, log  # once per queue, not once per poll
    assert "redis is back" in log and "Traceback" not in log
