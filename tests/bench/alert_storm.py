"""An alert storm: `python tests/bench/alert_storm.py [--hosts 1000] [--crossing 100] [--group-wait 5]`.

N simulated hosts (in this process) collected by a worker in this process (real Redis at
$FLEETTOP_TEST_REDIS_URL or 127.0.0.1:6379, SQLite in a temporary data_dir); after a quiet
round, `--crossing` of them go past their RAM threshold in one round. Prints how many
messages the loopback json:// receiver got for that round (the issue's target: one per URL
per group_wait, not one per host), how many alert lines they held, and the time from the end
of the round to the message."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: alert_helpers

from alert_helpers import Receiver  # noqa: E402

from fleettop.cli import quiet_library_warnings  # noqa: E402

quiet_library_warnings()  # before asyncssh is imported

from fleettop.config import LoadedConfig, Settings  # noqa: E402
from fleettop.probe.sim import SimFleet  # noqa: E402
from fleettop.wiring import open_service  # noqa: E402


async def storm(hosts: int, crossing: int, group_wait: float, redis_url: str) -> None:
    with tempfile.TemporaryDirectory(prefix="fleettop-storm-") as scratch:
        async with SimFleet(hosts, reboots=False) as fleet, Receiver() as receiver:
            machines = [fleet.host(name).machine for name, _ in fleet.hosts]
            for machine in machines:  # all quiet: the storm alone crosses a threshold
                machine.mem_fraction = 0.5
                machine.cpu_target = machine.cpu_util = 0.1
                machine.disk_growth = 0.0
                for disk in machine.disks:
                    disk.used_kib = disk.total_kib // 3
            settings = Settings.model_validate(
                {
                    "data_dir": scratch,
                    "redis": {"url": redis_url, "prefix": f"storm-{uuid.uuid4().hex[:8]}:"},
                    "worker": {"concurrency": 50},
                    "ssh": {"known_hosts": str(fleet.known_hosts_path)},
                    "alerts": {"for": 1},
                    "notify": {"urls": [receiver.url], "group_wait": group_wait},
                    "defaults": {"interval": 86400, "thresholds": {"cpu": 90, "ram": 95, "disk": 90}},
                    "servers": [cfg.model_dump(mode="json", exclude_none=True) for cfg in fleet.server_configs()],
                }
            )
            loaded = LoadedConfig(settings=settings, path=Path(scratch) / "config.yaml", exists=False)
            async with open_service(loaded, worker=False) as service:
                await service.start_worker(schedule=False, notify=True)
                servers = await service.repo.list_servers()
                for label in ("first contact", "quiet round"):
                    started = time.perf_counter()
                    await service.collect_servers(servers, everything=True)
                    await service.wait_collected(servers, timeout=600)
                    print(f"{label}: {hosts} hosts in {time.perf_counter() - started:.2f} s")
                assert receiver.messages == [], receiver.lines()[:5]
                for machine in machines[:crossing]:
                    machine.mem_fraction = 0.98
                started = time.perf_counter()
                await service.collect_servers(servers, everything=True)
                await service.wait_collected(servers, timeout=600)
                round_end = time.perf_counter()
                print(f"storm round: {hosts} hosts in {round_end - started:.2f} s, {crossing} past ram 95 %")
                while len(receiver.titled("FIRING")) < crossing and time.perf_counter() - round_end < group_wait + 60:
                    await asyncio.sleep(0.1)
                first = time.perf_counter() - round_end
                await asyncio.sleep(group_wait + 2)  # anything more of this round
                print(
                    f"received: {len(receiver.messages)} message(s) holding {len(receiver.titled('FIRING'))} FIRING "
                    f"line(s); all in {first:.2f} s after the round (group_wait {group_wait:g} s)"
                )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--crossing", type=int, default=100)
    parser.add_argument("--group-wait", type=float, default=5.0)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    asyncio.run(storm(args.hosts, args.crossing, args.group_wait, args.redis))


if __name__ == "__main__":
    main()
