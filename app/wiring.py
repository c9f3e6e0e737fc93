"""The composition root: `open_service()` builds a FleetService from a config.

Redis (the configured one or an embedded server), the database (migrated, config servers
synced), the cache, the two SAQ queues, the prober, and with worker=True the workers and
the scheduler running in the caller's event loop. `--demo N` swaps in a throwaway
data_dir and N simulated hosts.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from redis.exceptions import RedisError

from fleettop import logs
from fleettop.cache import Cache
from fleettop.config import LoadedConfig, ServerConfig, Settings
from fleettop.probe import Prober
from fleettop.queue.contract import CollectContext
from fleettop.queue.worker import Lanes
from fleettop.redis_server import RedisUnavailable, redis_target
from fleettop.secrets import SecretBox
from fleettop.servers import add_first_run_localhost
from fleettop.service import FleetService
from fleettop.store.db import open_database
from fleettop.store.repo import Repository

log = logging.getLogger("fleettop.service")


@contextlib.asynccontextmanager
async def open_service(
    loaded: LoadedConfig, *, worker: bool, demo: int | None = None, long_running: bool = False
) -> AsyncIterator[FleetService]:
    """The service for this config, open for the duration of the context. `long_running` (a
    dashboard, a headless worker): an embedded Redis that dies meanwhile is started again."""
    settings = loaded.settings
    async with contextlib.AsyncExitStack() as stack:
        demo_servers: list[ServerConfig] = []
        if demo:
            settings, demo_servers = await stack.enter_async_context(_demo(settings, demo))
        logs.configure_file_if_unset(settings.data_dir / "fleettop.log")
        redis = await stack.enter_async_context(redis_target(settings, keep_alive=long_running))
        database = await open_database(settings)
        stack.push_async_callback(database.close)
        repo = Repository(database, settings.defaults, settings.retention)
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
        prober = Prober(settings, secrets)
        stack.push_async_callback(prober.close)

        service = FleetService(CollectContext(settings, repo, cache, prober, lanes), secrets, redis, loaded.path)
        for cfg in demo_servers:
            await repo.add_server(cfg, source="db")
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
        yield service


@contextlib.asynccontextmanager
async def _demo(settings: Settings, count: int) -> AsyncIterator[tuple[Settings, list[ServerConfig]]]:
    """N simulated hosts, and settings with a throwaway data_dir (SQLite, embedded Redis)
    that trust them: a demo stores nothing of the user's."""
    from fleettop.probe.sim import SimFleet  # only the demo needs the simulator

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
                fleet.server_configs(),
            )
