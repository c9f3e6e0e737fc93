"""Alerts with real `fleettop --headless` processes on one Redis and one database: each
event reaches the receiver once, whatever the workers do."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
from alert_helpers import Receiver
from queue_helpers import Fleettop, run_fleettop, service_for, wait_until

from fleettop.probe.sim import SimFleet

pytestmark = pytest.mark.slow


def worker_config(make_config: Any, database_url: str | None, receiver: Receiver, **notify: Any) -> dict[str, Any]:
    return make_config(
        servers=["sim-0001", "sim-0002"],
        interval=10,  # 2 s on the tests' clock
        database={"url": database_url},
        alerts={"for": 1, "repeat": 0},
        notify={"urls": [receiver.url], "group_wait": 0, **notify},
        defaults={"thresholds": {"cpu": 100, "ram": 95, "disk": 100}},
    )


async def test_two_headless_workers_and_a_dashboard_worker_send_each_event_once(
    make_config: Any, database_url: str | None, short_dir: Path, fleet: SimFleet, receiver: Receiver
) -> None:
    data = worker_config(make_config, database_url, receiver)
    (short_dir / "config.yaml").chmod(0o600)
    machines = [fleet.host(name).machine for name in ("sim-0001", "sim-0002")]
    for machine in machines:
        machine.mem_fraction = 0.5
    workers = [await Fleettop.start(short_dir / "config.yaml", "--headless", name=f"w{n}") for n in (1, 2)]
    try:
        async with service_for(data, worker=True):  # the dashboard's own worker
            for machine in machines:
                machine.mem_fraction = 0.98
            await wait_until(lambda: len(receiver.titled("FIRING")) == 2, timeout=30)
            for machine in machines:
                machine.mem_fraction = 0.5
            await wait_until(lambda: len(receiver.titled("RESOLVED")) == 2, timeout=30)
            await asyncio.sleep(6)  # three more intervals: nothing more comes
    finally:
        codes = [await worker.stop() for worker in workers]
    assert codes == [0, 0], [worker.text()[-2000:] for worker in workers]
    assert sorted(line.split(" ram:")[0] for line in receiver.titled("FIRING")) == [
        "[FIRING] sim-0001",
        "[FIRING] sim-0002",
    ]
    assert len(receiver.titled("RESOLVED")) == 2 and len(receiver.lines()) == 4
    assert not any("Traceback" in worker.text() for worker in workers)


async def test_a_worker_killed_between_the_state_change_and_the_delivery_leaves_it_to_the_next_once(
    make_config: Any, short_dir: Path, fleet: SimFleet, receiver: Receiver
) -> None:
    worker_config(make_config, None, receiver, group_wait=3600)  # the first worker never gets to send
    config = short_dir / "config.yaml"
    config.chmod(0o600)
    fleet.host("sim-0001").machine.mem_fraction = 0.98
    doomed = await Fleettop.start(config, "--headless", name="doomed")

    async def firing() -> bool:
        code, out, _ = await run_fleettop(config, "alerts", "--json")
        return code == 0 and '"state": "firing"' in out

    try:
        await wait_until(firing, timeout=30, step=0.5)
    finally:
        await doomed.stop(signal.SIGKILL)
    assert receiver.messages == []  # the state changed; nothing was delivered
    worker_config(make_config, None, receiver, group_wait=0)  # the next worker, at once
    rescuer = await Fleettop.start(config, "--headless", name="rescuer")
    try:
        await wait_until(lambda: receiver.titled("FIRING"), timeout=30)
        await asyncio.sleep(3)
    finally:
        assert await rescuer.stop() == 0
    assert receiver.titled("FIRING") == [line for line in receiver.lines() if "sim-0001" in line]
    assert len(receiver.titled("FIRING")) == 1
