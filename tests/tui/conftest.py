"""The TUI against the real thing: a FleetService on the shared Redis (under a
prefix of its own, removed afterwards -- never FLUSHDB) and a private SQLite,
monitoring simulated SSH hosts from app.sim."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from app.config import LoadedConfig, Settings
from app.service import FleetService, open_service
from app.sim import SimFleet
from app.tui.app import FleetApp

HOSTS = 3


@dataclass
class LiveFleet:
    service: FleetService
    sim: SimFleet
    loaded: LoadedConfig

    def app(self) -> FleetApp:
        return FleetApp(self.service, config_path=self.loaded.path)


def live_settings(tmp_path: Path, redis_url: str, prefix: str, sim: SimFleet, **extra: Any) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": str(tmp_path / "data"),
            "redis": {"url": redis_url, "prefix": prefix},
            "ssh": {"known_hosts": str(sim.known_hosts_path), "connect_timeout": 2, "command_timeout": 5},
            "worker": {"retries": 1},
            # Long enough that only the keys under test collect, after the first round.
            "defaults": {"interval": 3600},
            **extra,
        }
    )


@pytest.fixture
async def redis_prefix(redis_url: str):
    prefix = f"fleettop-test-tui-{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = aioredis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"*{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def live(tmp_path: Path, redis_url: str, redis_prefix: str):
    """Three simulated hosts added as database servers, an embedded worker, all collected once."""
    async with SimFleet(HOSTS, seed=7) as sim:
        settings = live_settings(tmp_path, redis_url, redis_prefix, sim)
        loaded = LoadedConfig(settings=settings, path=tmp_path / "config.yaml", exists=True)
        async with open_service(loaded, worker=True) as service:
            for config in sim.server_configs():
                await service.add_server(config)
            servers = await service.list_servers()
            await service.collect_now(None)
            await service.wait_collected([row.server for row in servers], timeout=30)
            await _settled(service)
            yield LiveFleet(service, sim, loaded)


async def _settled(service: FleetService, timeout: float = 30.0) -> None:
    """Until the scheduler's first round has run too, so that from here on only the
    keys under test collect (every server's next scheduled run is an interval away)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = datetime.now(timezone.utc)
        schedule = await service.schedule()
        if schedule and all(at is not None and at > now + timedelta(minutes=10) for _, _, at in schedule):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the first scheduled round did not settle: {await service.schedule()}")


async def until(pilot: Any, condition: Callable[[], Any], timeout: float = 15.0, what: str = "") -> None:
    """Let the app run until `condition()` holds (it may be async)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.1)
