"""Fixtures of the TUI tests: a live fleet (see tui_live.py) per test."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from tui_live import HOSTS, LiveFleet, live_settings, settled

from fleettop.config import LoadedConfig
from fleettop.probe.sim import SimFleet
from fleettop.wiring import open_service


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
            await settled(service)
            yield LiveFleet(service, sim, loaded)
