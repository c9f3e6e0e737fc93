"""Helpers of the TUI tests against the real thing: a FleetService on the shared
Redis (under a prefix of its own, removed afterwards -- never FLUSHDB) and a
private SQLite, monitoring simulated SSH hosts from fleettop.sim."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fleettop.config import LoadedConfig, Settings
from fleettop.probe.sim import SimFleet
from fleettop.service import FleetService
from fleettop.tui.app import FleetApp

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


async def settled(service: FleetService, timeout: float = 30.0) -> None:
    """Until the scheduler's first round has run too, so that from here on only the
    keys under test collect (every server's next scheduled run is an interval away)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = datetime.now(timezone.utc)
        schedule = await service.schedule()
        if schedule and all(
            entry.next_run_at is not None and entry.next_run_at > now + timedelta(minutes=10) for entry in schedule
        ):
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
