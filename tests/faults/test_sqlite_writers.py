"""SQLite under concurrent writers: an in-process service with its embedded worker (what
the dashboard runs), a headless worker process and CLI processes, all writing one file.
No "database is locked" reaches anyone: not a CLI, not a run's error, not a log."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from queue_helpers import Fleettop, run_fleettop, service_for, wait_until

pytestmark = pytest.mark.slow


async def test_sqlite_with_a_dashboard_worker_a_headless_worker_and_the_cli(make_config, short_dir: Path, fleet):
    names = [name for name, _ in fleet.hosts]
    data = make_config(servers=names, interval=10, worker={"concurrency": 4})
    config = short_dir / "config.yaml"
    headless = await Fleettop.start(config, "--headless", name="headless")
    outputs: list[tuple[int, str, str]] = []
    try:
        async with service_for(data, worker=True) as service:
            servers = await service.resolve(names)
            started = time.monotonic()
            n = 0
            while time.monotonic() - started < 12:
                n += 1
                cli = [
                    run_fleettop(
                        config,
                        "servers",
                        "add",
                        f"extra-{n}",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        "1",
                        "--interval",
                        "3600",
                    ),
                    run_fleettop(config, "collect", "--all"),
                    run_fleettop(config, "export", "--format", "json"),
                ]
                outputs += await asyncio.gather(*cli, hammer(service))
                outputs = [item for item in outputs if item is not None]
            await wait_until(lambda: all_ok(service, servers), 40, step=0.5)
            runs = [run for s in servers for run in await service.repo.recent_runs(s.id, 100)]
    finally:
        code = await headless.stop()
    log = headless.text()
    assert code == 0, log[-2000:]
    for returncode, out, err in outputs:
        assert returncode == 0, (out, err)
        assert "locked" not in (out + err).lower(), err
    assert "locked" not in log.lower()
    assert not [run.error for run in runs if run.error and "locked" in run.error.lower()]
    print(f"{len(outputs)} CLI commands, {len(runs)} runs, 0 'database is locked'")


async def hammer(service) -> None:
    """The dashboard's own writes meanwhile: collect-now rounds and audit entries."""
    for _ in range(5):
        await service.collect_now(None)
        await service.pause()
        await service.resume()
        await asyncio.sleep(0.2)


async def all_ok(service, servers) -> bool:
    lasts = await service.repo.last_runs([s.id for s in servers])
    runs = [lasts.get(s.id) for s in servers]
    return all(run is not None and run.status != "running" for run in runs) and any(run.status == "ok" for run in runs)
