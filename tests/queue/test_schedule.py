"""The schedule reconcile, the cache, clean, and the embedded Redis's lifecycle."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from queue_helpers import service_for, wait_until
from store_helpers import store_sample

from fleettop.cache import ServerList
from fleettop.config import ServerConfig, servers_fingerprint
from fleettop.queue import scheduler
from fleettop.queue.control import enqueue_link
from fleettop.queue.scheduler import reconcile
from fleettop.redis_server import EmbeddedRedis


async def test_reconcile_adds_moves_and_withdraws_links_idempotently(make_config, database_url, fleet):
    data = make_config(servers=["sim-0001", "sim-0002"], database={"url": database_url})
    async with service_for(data, worker=False) as service:
        deps = service.context
        assert (await reconcile(deps)).added == 2
        again = await reconcile(deps)
        assert (again.added, again.moved, again.withdrawn) == (0, 0, 0)
        assert (await service.stats()).scheduled == 2

        seen = []

        async def listen():
            async for event in service.events():
                seen.append(event.kind)

        listener = asyncio.create_task(listen())
        try:
            await asyncio.sleep(0.2)
            extra = ServerConfig(
                name="extra", host="127.0.0.1", port=fleet.hosts[2][1], username=fleet.username, interval=600
            )
            await service.add_server(extra)
            await wait_until(lambda: asyncio.sleep(0, "servers" in seen), 10)
        finally:
            listener.cancel()
        assert (await reconcile(deps)).added == 1

        # A link left far out by a longer interval is brought forward when the interval shrinks.
        server = (await service.resolve(["extra"]))[0]
        key = service.cache.job_key("scheduled", server.id)
        assert await deps.lanes.scheduled.withdraw(key)
        assert await enqueue_link(deps, server.id, time.time() + 600)
        await service.edit_server("extra", extra.model_copy(update={"interval": 30}))
        assert (await reconcile(deps)).moved == 1
        (score,) = await deps.lanes.scheduled.scores([key])
        assert score <= time.time() + 1

        await service.edit_server("extra", extra.model_copy(update={"enabled": False}))
        assert (await reconcile(deps)).withdrawn == 1
        assert (await service.stats()).scheduled == 2
        schedule = await service.schedule()
        assert [entry.name for entry in schedule] == ["sim-0001", "sim-0002"]


async def test_reconcile_drops_a_server_list_left_stale_by_a_change_redis_did_not_hear(
    make_config, database_url, fleet
):
    data = make_config(servers=["sim-0001", "sim-0002"], database={"url": database_url})
    async with service_for(data, worker=False) as service:
        deps = service.context
        fingerprint = servers_fingerprint(service.settings)

        def names(listed) -> list[str]:
            return [name for _, name, _ in listed.servers]

        assert not (await reconcile(deps)).stale_list_dropped  # stored at open, matching the database: kept
        assert names(await service.cache.server_list(fingerprint)) == ["sim-0001", "sim-0002"]

        # Added while Redis was away: the database has the server, and nobody could drop the
        # list that commands beside a worker read (so `collect --all` there would skip it).
        extra = ServerConfig(name="extra", host="127.0.0.1", port=fleet.hosts[2][1], username=fleet.username)
        await service.repo.add_server(extra, source="db")
        assert names(await service.cache.server_list(fingerprint)) == ["sim-0001", "sim-0002"]
        assert (await reconcile(deps)).stale_list_dropped
        assert await service.cache.server_list(fingerprint) is None

        # The next command that misses it stores the list again; a matching list stays.
        await service.cache_server_list()
        assert not (await reconcile(deps)).stale_list_dropped
        assert names(await service.cache.server_list(fingerprint)) == ["extra", "sim-0001", "sim-0002"]

        # A list synced from another config (another fingerprint) is not this worker's to judge.
        await service.cache.set_server_list(ServerList(fingerprint="another config", servers=[(1, "elsewhere", True)]))
        assert not (await reconcile(deps)).stale_list_dropped
        assert await service.cache.server_list("another config") is not None


async def test_a_running_scheduler_picks_up_a_new_server_at_once(make_config, fleet, monkeypatch):
    monkeypatch.setattr(scheduler, "RECONCILE_EVERY_S", 120.0)  # so only the "servers" event can be the cause
    data = make_config(servers=["sim-0001"], interval=10)
    async with service_for(data, worker=True) as service:
        extra = ServerConfig(
            name="extra",
            host="127.0.0.1",
            port=fleet.hosts[1][1],
            username=fleet.username,
            interval=10,
            auth="key",
            key_file=str(fleet.client_key_path),
        )
        server = await service.add_server(extra)

        async def collected():
            return await service.repo.count_samples(server.id)

        await wait_until(collected, 10)
        row = await service.server_row(server.id)
        assert row.status == "up" and row.latest is not None and row.next_run_at is not None
        await service.remove_server("extra")
        assert await service.server_row(server.id) is None


async def test_latest_falls_back_to_sql_aggregate_is_cached_and_clean_trims(make_config, database_url, fleet):
    data = make_config(servers=["sim-0001"], database={"url": database_url}, queue={"completed_max_age": 0})
    async with service_for(data, worker="manual") as service:
        server = (await service.resolve(["sim-0001"]))[0]
        for _ in range(2):
            await service.collect_now(["sim-0001"])
            await service.wait_collected([server], timeout=10)
        cache = service.cache
        latest_key = f"{cache.prefix}metrics:latest:{server.id}"
        await cache.redis.delete(latest_key)
        rows = await service.list_servers()
        assert rows[0].latest is not None and rows[0].status == "up"
        assert await cache.redis.exists(latest_key)  # the SQL answer is cached again

        aggregate = await service.aggregate()
        assert (aggregate.total, aggregate.up) == (1, 1)
        assert 0 < await cache.redis.ttl(cache.prefix + "metrics:aggregated") <= 60

        assert len(await service.repo.recent_runs(server.id)) == 2
        removed = await service.clean()
        assert removed.total == 2  # the older run, and the finished manual job record
        assert len(await service.repo.recent_runs(server.id)) == 1  # a server's newest run stays
        assert await service.context.lanes.manual.job(cache.job_key("manual", server.id)) is None

        assert await cache.clear() == 4  # latest figures, aggregate, last run outcome, server list
        assert not await cache.redis.exists(latest_key)
        # The hourly clean is done by whichever process claims it first.
        assert await cache.claim("clean", 5) and not await cache.claim("clean", 5)


async def test_embedded_redis_cleans_up_after_a_crash(short_dir: Path):
    embedded = EmbeddedRedis(short_dir)
    embedded.directory.mkdir(mode=0o700)
    embedded.socket.write_text("left by a crash")
    embedded.pidfile.write_text("999999")
    await embedded.acquire()
    try:
        assert embedded.socket.is_socket()
        assert [lease.name for lease in embedded.leases.iterdir()] == [str(os.getpid())]
        # A second user in this process shares it; a lease of a dead process does not keep it.
        (embedded.leases / "999999").touch()
        await EmbeddedRedis(short_dir).acquire()
    finally:
        await embedded.release()
    assert not embedded.socket.exists()
    assert list(embedded.leases.iterdir()) == []


async def expired_gone(expired) -> bool:
    return not await expired()


async def test_a_worker_purges_the_expired_history_once_an_hour(make_config, database_url, fleet):
    """The raw samples past retention.raw_days go as soon as a worker runs (one process claims
    the hourly purge); the recent ones stay, rolled up."""
    from datetime import UTC, datetime, timedelta

    from store_helpers import metrics

    data = make_config(servers=["sim-0001"], database={"url": database_url}, retention={"raw_days": 1})
    async with service_for(data, worker=False) as service:
        (server,) = await service.resolve(["sim-0001"])
        now = datetime.now(UTC)
        for age in (timedelta(days=3), timedelta(days=2), timedelta(hours=1)):
            await store_sample(service.repo, server.id, metrics(now - age))
        await service.start_worker()

        async def expired() -> list:
            return [s async for s in service.repo.iter_samples("sim-0001", until=now - timedelta(days=1))]

        assert len(await expired()) == 2
        await wait_until(lambda: expired_gone(expired), 20)
        recent = [s async for s in service.repo.iter_samples("sim-0001", since=now - timedelta(hours=2))]
        assert recent and recent[0].collected_at == now - timedelta(hours=1)
        assert not await service.cache.claim("purge", 5)  # claimed for the hour by the worker
