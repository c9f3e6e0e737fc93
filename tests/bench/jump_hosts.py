"""Warm collect-all of 100 hosts through one jump host against the same 100 direct, in one run:
`python tests/bench/jump_hosts.py [--rounds N] [--concurrency 50]`.

101 simulated hosts in a process of their own (sim_host.py --jump-host: the first forwards to
the others); one fleettop Prober (the transport the worker uses) holds the connections. After a
first round that opens them, rounds take turns: every host collected directly, then every host
through the jump host, `--concurrency` at a time. Prints the median round of each, and the TCP
connections held to the jump host (ss) while its 100 hosts' connections are open.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fleettop.config import Settings
from fleettop.domain import Counters, Server
from fleettop.probe import Prober

HERE = Path(__file__).resolve().parent


async def established_to(port: int) -> int:
    process = await asyncio.create_subprocess_exec(
        "ss", "-Htn", "state", "established", f"( dport = :{port} )", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    return len(out.decode().splitlines())


async def one_round(prober: Prober, servers: list[Server], concurrency: int, counters: dict[int, Counters]) -> float:
    """One collection of each server (with its counters from the last: not a first contact)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(server: Server) -> None:
        async with gate:
            result = await prober.collect(server, counters.get(server.id))
            counters[server.id] = result.counters

    started = time.perf_counter()
    await asyncio.gather(*(one(server) for server in servers))
    return time.perf_counter() - started


async def main(rounds: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory(prefix="fleettop-jump-bench-") as tmp:
        where = Path(tmp) / "hosts.json"
        sims = subprocess.Popen([sys.executable, str(HERE / "sim_host.py"), "101", str(where), "--jump-host"])
        try:
            while not where.exists():
                await asyncio.sleep(0.05)
            fleet = json.loads(where.read_text())
            settings = Settings.model_validate(
                {
                    "data_dir": tmp,
                    "ssh": {
                        "known_hosts": fleet["known_hosts"],
                        "key_file": fleet["client_key"],
                        "username": fleet["username"],
                        "config": None,
                    },
                }
            )
            (_, bastion_port), *hosts = fleet["hosts"]
            jump = f"{fleet['username']}@{fleet['address']}:{bastion_port}"

            def servers(via: str | None, offset: int) -> list[Server]:
                return [
                    Server(
                        id=offset + i,
                        name=f"{'jump' if via else 'direct'}-{name}",
                        host=fleet["address"],
                        port=port,
                        auth="key",
                        jump=via,
                    )
                    for i, (name, port) in enumerate(hosts)
                ]

            direct, behind = servers(None, 1), servers(jump, 1000)
            prober = Prober(settings)
            counters: dict[int, Counters] = {}
            try:
                for group in (direct, behind):  # open every connection first: the rounds are warm
                    await one_round(prober, group, concurrency, counters)
                timings: dict[str, list[float]] = {"direct": [], "through one jump host": []}
                for _ in range(rounds):
                    timings["direct"].append(await one_round(prober, direct, concurrency, counters))
                    timings["through one jump host"].append(await one_round(prober, behind, concurrency, counters))
                held = await established_to(bastion_port)
            finally:
                await prober.close()
        finally:
            sims.terminate()
            sims.wait(10)
    print(f"warm collect-all of {len(hosts)} hosts, {concurrency} at a time, {rounds} rounds each (median, min-max):")
    for label, values in timings.items():
        print(
            f"  {label:22} {statistics.median(values) * 1000:7.0f} ms  ({min(values) * 1000:.0f}-{max(values) * 1000:.0f})"
        )
    print(f"  TCP connections held to the jump host: {held}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=50)
    options = parser.parse_args()
    asyncio.run(main(options.rounds, options.concurrency))
