"""Redis killed and started again (empty) under a dashboard with its embedded worker and
a headless worker: both stay up, show the outage, reconnect by themselves, and every
server's schedule is whole again afterwards. A private redis-server: the shared one
is never stopped."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from queue_helpers import Fleettop, service_for, wait_until

from fleettop.tui.app import FleetApp
from fleettop.tui.widgets.bars import HeaderBar

pytestmark = pytest.mark.slow

NAMES = ["sim-0001", "sim-0002", "sim-0003", "sim-0004"]


async def test_redis_restart_under_a_dashboard_and_a_headless_worker(
    make_config, short_dir: Path, fleet, private_redis
):
    data = make_config(servers=NAMES, interval=10, redis={"url": private_redis.url}, worker={"concurrency": 2})
    config = short_dir / "config.yaml"
    headless = await Fleettop.start(config, "--headless", name="headless")
    try:
        async with service_for(data, worker=True) as service:
            app = FleetApp(service, config_path=config)
            async with app.run_test(size=(160, 40)) as pilot:
                header = app.dashboard.query_one(HeaderBar)

                async def header_says(redis_ok: bool) -> bool:
                    await pilot.pause(0.1)
                    shown = str(header.render())
                    return (
                        header.health is not None
                        and header.health.redis is redis_ok
                        and ("redis ✓" in shown) == redis_ok
                    )

                await wait_until(lambda: header_says(True), 20)
                servers = await service.resolve(NAMES)
                await wait_until(lambda: all_have_ok_runs(service, servers, since=None), 30)

                async def both_workers_up() -> bool:  # under load the headless one starts after the first round
                    return await service.workers_alive() >= 2

                await wait_until(both_workers_up, 30)

                private_redis.stop()
                outage_at = datetime.now(timezone.utc)
                await wait_until(lambda: header_says(False), 15)
                health = await service.health()
                assert health.redis is False and health.database is True
                await asyncio.sleep(3)  # the outage lasts
                assert headless.process.returncode is None, headless.text()[-2000:]
                assert app.is_running

                private_redis.start()  # empty: every job, link and flag is gone
                back_at = time.monotonic()
                await wait_until(lambda: header_says(True), 20)
                # The schedule is whole again: one link per server, and each collected after the restart.
                await wait_until(lambda: schedule_links(service, len(NAMES)), 20)
                await wait_until(lambda: all_have_ok_runs(service, servers, since=outage_at), 40, step=0.5)
                recovered_in = time.monotonic() - back_at
                stats = await service.stats()
                assert stats.scheduled == len(NAMES) and stats.active <= len(NAMES)
                assert app.is_running
        print(f"recovered in {recovered_in:.1f}s")
    finally:
        code = await headless.stop()
    log = headless.text()
    assert code == 0, log[-3000:]
    assert "redis unavailable" in log and "redis is back" in log and "Traceback" not in log


async def all_have_ok_runs(service, servers, since) -> bool:
    for server in servers:
        runs = await service.repo.recent_runs(server.id, 20)
        if not any(run.status == "ok" and (since is None or run.started_at > since) for run in runs):
            return False
    return True


async def schedule_links(service, count: int) -> bool:
    try:
        return (await service.stats()).scheduled == count
    except Exception:
        return False


async def test_a_frozen_redis_is_shown_as_down_and_survived(make_config, short_dir: Path, fleet, private_redis):
    """Redis frozen (SIGSTOP: connections accepted, never answered, as in a partition
    without resets): health() still answers, "down", and all resumes after SIGCONT."""
    import os
    import signal

    data = make_config(servers=NAMES[:2], interval=10, redis={"url": private_redis.url})
    async with service_for(data, worker=True) as service:
        assert (await service.health()).redis is True
        os.kill(private_redis.process.pid, signal.SIGSTOP)
        started = time.monotonic()
        try:
            health = await asyncio.wait_for(service.health(), 8)  # the TUI's header asks this every 1.5 s
        except TimeoutError:
            health = None
        finally:
            os.kill(private_redis.process.pid, signal.SIGCONT)
        answered_in = time.monotonic() - started
        assert health is not None and health.redis is False, "health() hung on a frozen Redis"
        await wait_until(lambda: redis_ok(service), 15)
        servers = await service.resolve(NAMES[:2])
        await service.collect_now(NAMES[:2])
        await service.wait_collected(servers, timeout=30)
        assert all(outcome.status == "ok" for outcome in await service.manual_outcomes([s.id for s in servers]))
    print(f"frozen redis reported down in {answered_in:.1f}s")


async def redis_ok(service) -> bool:
    return (await service.health()).redis is True


async def test_collect_wait_when_redis_goes_away_is_one_line(make_config, short_dir: Path, fleet, private_redis):
    """`collect --wait` waiting on a hung host when Redis dies: a one-line error and a
    non-zero exit, never a traceback."""
    from queue_helpers import run_fleettop

    make_config(servers=["sim-0001"], interval=3600, redis={"url": private_redis.url}, ssh={"command_timeout": 30})
    fleet.freeze("sim-0001")
    waiting = asyncio.create_task(run_fleettop(short_dir / "config.yaml", "collect", "sim-0001", "--wait", timeout=60))
    await wait_until(lambda: fleet.host("sim-0001").answers, 30)  # the collection hangs on the host
    private_redis.stop()
    code, out, err = await waiting
    fleet.freeze("sim-0001", False)
    assert code != 0
    assert "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("fleettop: redis: "), err


async def test_a_change_saved_while_redis_is_away_is_kept_and_not_reported_as_failed(make_config, fleet, private_redis):
    """The database has the change once it is committed; telling the workers needs Redis. With
    Redis away that second step raised, so the dashboard said the save failed (and a second
    save answered 'already exists'). The workers' reconcile catches up on its own."""
    data = make_config(servers=[], redis={"url": private_redis.url})
    first, second = fleet.server_configs()[:2]
    async with service_for(data, worker=False) as service:
        private_redis.stop()
        try:
            await service.add_server(first)
            await service.edit_server(first.name, first.model_copy(update={"interval": 120}))
            await service.add_server(second)
            await service.remove_server(second.name)
            assert [(s.name, s.interval) for s in await service.repo.list_servers()] == [(first.name, 120)]
        finally:
            private_redis.start()


async def test_a_dashboard_worker_is_running_even_before_its_heartbeat_reaches_a_new_redis(
    make_config, fleet, private_redis
):
    """After an empty Redis came back the header said "○ no worker" until the process's own
    worker wrote its next heartbeat, though that worker was running all along."""
    data = make_config(servers=[], redis={"url": private_redis.url})
    async with service_for(data, worker=True) as service:
        await wait_until(lambda: health_says(service, "running"), 20)
        await service.cache.redis.flushdb()  # as a Redis started again: no heartbeat in it
        assert await service.workers_alive() == 0
        assert (await service.health()).worker == "running"


async def health_says(service, worker: str) -> bool:
    return (await service.health()).worker == worker
