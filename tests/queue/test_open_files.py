"""A worker's open-file limit (#18): raised to what its kept connections need, up to the hard
limit; short of that it says so in one line and collects every server anyway."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from queue_helpers import Fleettop, service_for, wait_until

from fleettop.probe.sim import SimFleet

pytestmark = pytest.mark.slow

HOSTS = 400


@pytest.fixture
async def fleet():
    async with SimFleet(HOSTS, seed=11, reboots=False) as fleet:
        yield fleet


def open_files_limit(pid: int) -> tuple[int, int]:
    line = next(line for line in Path(f"/proc/{pid}/limits").read_text().splitlines() if "open files" in line)
    soft, hard = re.findall(r"\d+", line)[:2]
    return int(soft), int(hard)


async def test_under_ulimit_256_a_worker_collects_400_hosts_and_says_why_it_reconnects(
    make_config, short_dir: Path, fleet
):
    # 20 collections at a time (each first contact pauses 0.25 s): within 256 files it keeps
    # 256 - 128 reserved - 2 lanes x 20 = 88 connections open.
    data = make_config(interval=60, worker={"concurrency": 20})
    config = short_dir / "config.yaml"
    worker = await Fleettop.start(config, "--headless", open_files=(256, 256))
    try:
        async with service_for(data, worker=False) as service:

            async def all_collected() -> bool:
                return len(await service.repo.latest_samples()) == HOSTS

            await wait_until(all_collected, 120, step=0.5)
            stats = await service.stats()
            assert stats.failed == 0
            (info,) = stats.workers
            assert 0 < info.connections < 256  # kept within the limit, the rest reconnect
        assert open_files_limit(worker.process.pid) == (256, 256)
    finally:
        code = await worker.stop()
    log = worker.text()
    assert code == 0, log[-2000:]
    warnings = [line for line in log.splitlines() if "open files limited to 256" in line]
    assert len(warnings) == 1, log[-2000:]
    assert f"of {HOSTS} servers keep their connection open" in warnings[0]
    assert "Traceback" not in log and "Too many open files" not in log
    print(warnings[0])


async def test_a_worker_raises_its_soft_open_file_limit_to_what_it_needs(make_config, short_dir: Path, fleet):
    make_config(servers=[fleet.hosts[0][0]], interval=60)
    worker = await Fleettop.start(short_dir / "config.yaml", "--headless", open_files=(256, 8192))
    try:
        await wait_until(lambda: "started" in worker.text(), 30)
        soft, hard = open_files_limit(worker.process.pid)
    finally:
        await worker.stop()
    assert (soft, hard) == (128 + 2 * 5 + 4096, 8192)  # reserve + two lanes' collections + ssh.max_open_connections
    assert "open files limited" not in worker.text()
