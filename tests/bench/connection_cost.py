"""What a kept connection saves and what it holds (#18's connection policy), on the real sshd.

`sudo python tests/bench/connection_cost.py [--hosts 20] [--rounds 10]`: HOSTS server entries
on the bench sshd, collected together ROUNDS times over kept connections (interval 60 s) and
ROUNDS times reconnecting (interval 900 s, past ssh.keep_open_max_interval), in alternating
turns. Prints, per collection: wall time, the collecting process's CPU, the host's CPU (sshd
and the probe shell: the sshd master's reaped children plus its live descendants); and what one
kept connection holds on the host between collections (processes, proportional memory).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

import harness

from fleettop.config import Settings
from fleettop.domain import Server
from fleettop.probe import Prober

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                tree.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    return tree


def descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def host_cpu(master: int) -> float:
    """CPU seconds of the sshd master's reaped children plus its live descendants."""
    fields = _stat(master)
    total = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    for pid in descendants(master):
        try:
            fields = _stat(pid)
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


async def rounds(prober: Prober, servers: list[Server], count: int, master: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {"wall": [], "client": [], "host": []}
    for _ in range(count):
        client, host, wall = time.process_time(), host_cpu(master), time.perf_counter()
        await asyncio.gather(*(prober.collect(server, None) for server in servers))
        wall = time.perf_counter() - wall
        await asyncio.sleep(0.3)  # closed sessions reaped, their CPU in the master's
        figures["wall"].append(wall / len(servers))
        figures["client"].append((time.process_time() - client) / len(servers))
        figures["host"].append((host_cpu(master) - host) / len(servers))
    return figures


async def main(hosts: int, count: int) -> None:
    with harness.real_sshd() as sshd:
        master = int((sshd.key_file.parent / "sshd.pid").read_text().split()[0])
        settings = Settings.model_validate(
            {
                "data_dir": str(sshd.key_file.parent),
                "ssh": {
                    "known_hosts": str(sshd.known_hosts),
                    "key_file": str(sshd.key_file),
                    "max_concurrent_connects": harness.SSHD_CONNECTS,
                },
            }
        )
        prober = Prober(settings)
        kept = [sshd.server(id=n, name=f"kept-{n}", interval=60) for n in range(hosts)]
        fresh = [sshd.server(id=1000 + n, name=f"fresh-{n}", interval=900) for n in range(hosts)]
        try:
            await rounds(prober, kept + fresh, 1, master)  # warm-up: imports, host keys read
            results = {
                "kept": {"wall": [], "client": [], "host": []},
                "reconnect": {"wall": [], "client": [], "host": []},
            }
            for _ in range(count):
                for name, servers in (("kept", kept), ("reconnect", fresh)):
                    for key, values in (await rounds(prober, servers, 1, master)).items():
                        results[name][key].extend(values)
            held = [pid for pid in descendants(master)]
            per_connection = len(held) / hosts
            memory = sum(pss_kib(pid) for pid in held) / hosts
        finally:
            await prober.close()
    print(f"connection cost on the real sshd, {hosts} hosts x {count} rounds, load average {os.getloadavg()[0]:.2f}")
    print("| per collection | kept connection | new connection each time |")
    print("|---|---|---|")
    for key, label in (("wall", "wall time"), ("client", "collector CPU"), ("host", "host CPU (sshd + shell)")):
        kept_ms = statistics.median(results["kept"][key]) * 1000
        new_ms = statistics.median(results["reconnect"][key]) * 1000
        print(f"| {label} | {kept_ms:.1f} ms | {new_ms:.1f} ms |")
    print(
        f"held on the host per kept connection between collections: {per_connection:.1f} processes, {memory:.0f} KiB PSS"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.hosts, args.rounds))
