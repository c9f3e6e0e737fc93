"""The queue's tests run against the real Redis (each test under its own key prefix,
cleaned afterwards, never FLUSHDB), real SQLite or PostgreSQL, and simulated SSH
hosts from fleettop.sim. Worker processes are real `fleettop --headless` processes."""

from __future__ import annotations

import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from fleettop.sim import SimFleet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "store"))  # store_helpers

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def prefix(redis_url: str):
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    value = f"fttest-{uuid.uuid4().hex[:12]}:"
    yield value
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"*{value}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def short_dir():
    """A data_dir short enough for a unix socket path (pytest's tmp_path may not be)."""
    path = Path(tempfile.mkdtemp(prefix="ftq-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def database_url(request, short_dir: Path) -> str | None:
    """None (SQLite in data_dir) or a fresh PostgreSQL database."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_database_url")
    return None


@pytest.fixture
async def fleet() -> AsyncIterator[SimFleet]:
    async with SimFleet(4, seed=3, reboots=False) as fleet:
        yield fleet


@pytest.fixture
def make_config(short_dir: Path, redis_url: str, prefix: str, fleet: SimFleet):
    """A config dict for these tests (the fleet as config servers); keyword
    arguments replace sections or keys. Also written to short_dir/config.yaml."""

    def make(*, servers: list[str] | None = None, interval: int = 900, **overrides: Any) -> dict[str, Any]:
        chosen = [cfg for cfg in fleet.server_configs() if servers is None or cfg.name in servers]
        data: dict[str, Any] = {
            "data_dir": str(short_dir / "data"),
            "redis": {"url": redis_url, "prefix": prefix},
            "worker": {"concurrency": 5, "retries": 3, "retry_backoff": 5, "shutdown_grace": 2},
            "ssh": {
                "known_hosts": str(fleet.known_hosts_path),
                "connect_timeout": 3,
                "command_timeout": 5,
            },
            "servers": [
                {**cfg.model_dump(mode="json", exclude_none=True, exclude={"thresholds"}), "interval": interval}
                for cfg in chosen
            ],
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        (short_dir / "config.yaml").write_text(yaml.safe_dump(data))
        return data

    return make
