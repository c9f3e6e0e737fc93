"""Worker CPU per collection with alerting on and off, same tree, one run:
`python tests/bench/alert_ab.py [--hosts 100] [--rounds 5] [--repeats 3]`.

The simulated hosts run in a process of their own (sim_host.py: their random states put
some past a threshold, so alerts fire, update and resolve as in a real fleet); the worker
runs in this process, and this process's CPU (time.process_time) is measured over warm
collect-all rounds. "off": the repository judges nothing (alert_setup None); "on": the
alert rules judge every sample in its transaction, with a notify URL to a loopback
receiver (--no-notify: none). The variants take turns, each with a data_dir and Redis prefix of its own."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # tests/: alert_helpers

from fleettop.cli import quiet_library_warnings  # noqa: E402

quiet_library_warnings()

import harness  # noqa: E402
from alert_helpers import Receiver  # noqa: E402

from fleettop.config import LoadedConfig, Settings  # noqa: E402
from fleettop.wiring import open_service  # noqa: E402


async def cpu_per_collection(
    on: bool, servers: list[dict], ssh: dict, rounds: int, redis_url: str, notify: bool = True
) -> float:
    with tempfile.TemporaryDirectory(prefix="fleettop-alert-ab-") as scratch:
        async with Receiver() as receiver:
            settings = Settings.model_validate(
                {
                    "data_dir": scratch,
                    "redis": {"url": redis_url, "prefix": f"alert-ab-{uuid.uuid4().hex[:8]}:"},
                    "worker": {"concurrency": 50},
                    "ssh": ssh,
                    "notify": {"urls": [receiver.url] if on and notify else [], "group_wait": 1},
                    "defaults": {"interval": 86400},
                    "servers": servers,
                }
            )
            loaded = LoadedConfig(settings=settings, path=Path(scratch) / "config.yaml", exists=False)
            async with open_service(loaded, worker=False) as service:
                if not on:
                    service.repo.alert_setup = None
                await service.start_worker(schedule=False, notify=on and notify)
                every = await service.repo.list_servers()
                for _ in range(2):  # first contact, then warm
                    await service.collect_servers(every, everything=True)
                    await service.wait_collected(every, timeout=600)
                cpu0 = time.process_time()
                for _ in range(rounds):
                    await service.collect_servers(every, everything=True)
                    await service.wait_collected(every, timeout=600)
                cpu = time.process_time() - cpu0
                firing = sum(1 for alert in await service.repo.alerts() if alert.state.value == "firing")
            print(
                f"  {'on ' if on else 'off'}: {1e3 * cpu / (rounds * len(every)):.2f} ms/collection ({firing} firing)"
            )
            return 1e3 * cpu / (rounds * len(every))


async def main_async(args: argparse.Namespace) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="fleettop-alert-ab-hosts-") as scratch,
        harness.sim_hosts(args.hosts, Path(scratch)) as hosts,
    ):
        servers, ssh = harness.sim_servers(hosts.info)
        results: dict[bool, list[float]] = {False: [], True: []}
        for turn in range(args.repeats):
            print(f"turn {turn + 1}/{args.repeats}")
            for on in (False, True):
                results[on].append(await cpu_per_collection(on, servers, ssh, args.rounds, args.redis, args.notify))
    off, on = statistics.median(results[False]), statistics.median(results[True])
    print(
        f"worker CPU per collection, {args.hosts} hosts, medians of {args.repeats}: off {off:.2f} ms, on {on:.2f} ms "
        f"({100 * (on - off) / off:+.1f} %); min off {min(results[False]):.2f}, on {min(results[True]):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--no-notify", dest="notify", action="store_false", help="on: judge only, no notify URL")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
