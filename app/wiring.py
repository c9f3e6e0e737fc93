"""The composition root: `open_service()` builds a FleetService from a config.

Redis (the configured one or an embedded server), the database (migrated, config servers
synced), the cache, the two SAQ queues, the prober, and with worker=True the workers and
the scheduler running in the caller's event loop. `--demo N` swaps in a throwaway
data_dir and N simulated hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from fleettop import logs
from fleettop.cache import Cache
from fleettop.config import Listen, LoadedConfig, ServerConfig, Settings, parse_listen
from fleettop.probe import Prober
from fleettop.queue.contract import CollectContext
from fleettop.queue.worker import Lanes
from fleettop.redis_server import RedisUnavailable, redis_target
from fleettop.rollup import FIVE_MINUTES, ONE_HOUR
from fleettop.secrets import SecretBox
from fleettop.servers import add_first_run_localhost
from fleettop.service import FleetService
from fleettop.store.alerts import AlertSetup
from fleettop.store.db import open_database
from fleettop.store.repo import Repository
from fleettop.tasks import cancel_and_wait

if TYPE_CHECKING:
    from fleettop.probe.sim import SimFleet

log = logging.getLogger("fleettop.service")
DEMO_FINE_DAYS = 7  # 5-minute buckets for the last week: the 24 h and 7 d charts read them


def bind_api(loaded: LoadedConfig, listen: Listen | None) -> socket.socket | None:
    """The HTTP API's listening socket, when --listen (`listen`) or api.listen asks for one:
    bound before anything starts, so that a port in use, or an address other than loopback
    without a token, is a one-line error (exit 2) rather than a worker that dies after starting."""
    api = loaded.settings.api
    if listen is not None:
        where = "--listen"
    elif api.listen is not None:
        listen, where = parse_listen(api.listen), f"{loaded.where(['api', 'listen'])}api.listen"
    else:
        return None
    from fleettop.api.server import bind_listener  # FastAPI and uvicorn: only when the API is asked for

    return bind_listener(listen, api, where)


@contextlib.asynccontextmanager
async def open_service(
    loaded: LoadedConfig,
    *,
    worker: bool,
    demo: int | None = None,
    long_running: bool = False,
    api: socket.socket | None = None,
) -> AsyncIterator[FleetService]:
    """The service for this config, open for the duration of the context. `long_running` (a
    dashboard, a headless worker): an embedded Redis that dies meanwhile is started again.
    `api`: a socket from bind_api, where the HTTP API is served while the service is open."""
    settings = loaded.settings
    async with contextlib.AsyncExitStack() as stack:
        if api is not None:
            stack.callback(api.close)
        demo_servers: list[ServerConfig] = []
        fleet: SimFleet | None = None
        if demo:
            settings, demo_fleet = await stack.enter_async_context(_demo(settings, demo))
            demo_servers, fleet = demo_fleet.server_configs(), demo_fleet
        logs.configure_file_if_unset(settings.data_dir / "fleettop.log")
        redis = await stack.enter_async_context(redis_target(settings, keep_alive=long_running))
        database = await open_database(settings)
        stack.push_async_callback(database.close)
        repo = Repository(
            database, settings.defaults, settings.retention, AlertSetup.of(settings), groups=settings.groups
        )
        await repo.sync_config_servers(settings.servers)

        connections = max(100, settings.worker.concurrency * 4)
        cache = Cache(redis.client(connections), settings)
        stack.push_async_callback(cache.redis.aclose)
        try:
            await cache.redis.ping()
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(f"cannot reach {redis.describe()}: {exc}") from None
        lanes = Lanes(lambda: redis.client(connections), cache)
        await lanes.connect()
        stack.push_async_callback(lanes.close)
        secrets = SecretBox(settings.data_dir)
        prober = Prober(settings, secrets, find_server=repo.get_server)
        stack.push_async_callback(prober.close)

        service = FleetService(CollectContext(settings, repo, cache, prober, lanes), secrets, redis, loaded.path)
        demo_ids = {cfg.name: (await repo.add_server(cfg, source="db")).id for cfg in demo_servers}
        if fleet is not None:
            filling = asyncio.create_task(fill_demo_history(repo, fleet, demo_ids), name="fleettop-demo-history")
            stack.push_async_callback(cancel_and_wait, [filling])
        if not demo:
            await add_first_run_localhost(repo, loaded)
        await service.cache_server_list()
        try:
            await service.record_audit_requests()
        except Exception as exc:  # never a reason not to start: a worker's recorder tries again every second
            log.warning("cannot record the audit entries of attached commands yet: %s", exc)
        stack.push_async_callback(service.stop_worker)
        if worker:
            await service.start_worker()
        if api is not None:
            from fleettop.api.server import serving

            await stack.enter_async_context(serving(service, settings.api, api))
        yield service


async def fill_demo_history(repo: Repository, fleet: SimFleet, ids: dict[str, int], days: int = 365) -> float:
    """A year of history for each simulated host (fleettop.probe.sim's SimMachine.past),
    written as the workers write rollups, server after server, in the background: the
    dashboard is up at once and each server's charts fill in as it is done. Returns the
    seconds it took."""
    started = time.perf_counter()
    now = int(time.time())
    try:
        for index, (name, server_id) in enumerate(sorted(ids.items())):
            machine = fleet.host(name).machine
            # Made in a thread: the event loop (the dashboard, the collections) goes on meanwhile.
            hours, fine = await asyncio.to_thread(machine.past, now, days=days, fine_days=DEMO_FINE_DAYS, seed=index)
            await repo.write_rollups(ONE_HOUR, {server_id: hours})
            await repo.write_rollups(FIVE_MINUTES, {server_id: fine})
    except Exception as exc:  # a demo without its past is still a demo
        log.warning("demo: history not filled: %s", exc)
    elapsed = time.perf_counter() - started
    log.info("demo: %d days of history for %d servers in %.1f s", days, len(ids), elapsed)
    return elapsed


@contextlib.asynccontextmanager
async def _demo(settings: Settings, count: int) -> AsyncIterator[tuple[Settings, SimFleet]]:
    """N simulated hosts, and settings with a throwaway data_dir (SQLite, embedded Redis)
    that trust them: a demo stores nothing of the user's."""
    from fleettop.probe.sim import SimFleet  # only the demo needs the simulator (asyncssh's server side)

    with tempfile.TemporaryDirectory(prefix="fleettop-demo-") as scratch:
        async with SimFleet(count) as fleet:
            yield (
                settings.model_copy(
                    update={
                        "data_dir": Path(scratch),
                        "database": settings.database.model_copy(update={"url": None}),
                        "redis": settings.redis.model_copy(update={"url": None}),
                        "ssh": settings.ssh.model_copy(update={"known_hosts": fleet.known_hosts_path}),
                        "defaults": settings.defaults.model_copy(update={"interval": 10}),
                        "servers": [],
                    }
                ),
                fleet,
            )
