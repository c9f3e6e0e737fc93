"""Simulated hosts in a process of their own (so their CPU is not fleettop's):
`python tests/bench/sim_host.py COUNT OUT.json [--jump-host] [--seed N]` starts
fleettop.probe.sim.SimFleet(COUNT), writes where the hosts are to OUT.json, and runs until
SIGTERM/SIGINT. With --jump-host the first host also forwards to the others, as a bastion.
--seed (default 11) sets the hosts' random states: several processes take different ones.

On SIGUSR1 it writes what the hosts saw to OUT.stats.json (written whole, then renamed):
per host its open SSH connections (each named CLIENT_PORT-SERVER_PORT), connections accepted
and probe sessions opened since start, and answers; and the answers given per connection
(counted here, in the bench, by wrapping SimFleet._answer: the product's SimFleet counts
per host only), which tells what each worker process collected."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import sys
from pathlib import Path

from fleettop.probe.sim import SimFleet

# A connection is named "CLIENT_PORT-SERVER_PORT": a client port alone is not unique (two
# processes may use one port number towards different servers).
ANSWERS_BY_CONNECTION: collections.Counter[str] = collections.Counter()
_answer = SimFleet._answer


async def _counted_answer(self, host, process, *, first_contact: bool) -> bool:
    peer, own = process.get_extra_info("peername"), process.get_extra_info("sockname")
    if peer and own:
        ANSWERS_BY_CONNECTION[f"{peer[1]}-{own[1]}"] += 1
    return await _answer(self, host, process, first_contact=first_contact)


SimFleet._answer = _counted_answer  # the bench's own count; SimFleet itself is unchanged


def stats(fleet: SimFleet) -> dict:
    hosts = {}
    for name, _ in fleet.hosts:
        host = fleet.host(name)
        ports = []
        for conn in host.connections:
            peer, own = conn.get_extra_info("peername"), conn.get_extra_info("sockname")
            if peer and own:
                ports.append(f"{peer[1]}-{own[1]}")
        hosts[name] = {
            "open": ports,
            "connections_made": host.connections_made,
            "sessions": host.sessions,
            "answers": host.answers,
        }
    return {
        "pid": os.getpid(),
        "hosts": hosts,
        "answers_by_connection": dict(ANSWERS_BY_CONNECTION),
        "peak_handshaking": fleet.peak_handshaking,
    }


async def main(count: int, out: Path, jump_host: bool = False, seed: int = 11) -> None:
    stop = asyncio.Event()
    dump = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, dump.set)
    # reboots=False: a simulated reboot resets counters on a timer; the figures are about speed.
    async with SimFleet(count, seed=seed, reboots=False) as fleet:
        if jump_host:
            fleet.make_jump_host(fleet.hosts[0][0])
        tmp = out.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "address": fleet.address,
                    "username": fleet.username,
                    "known_hosts": str(fleet.known_hosts_path),
                    "client_key": str(fleet.client_key_path),
                    "hosts": fleet.hosts,
                }
            )
        )
        tmp.rename(out)
        stats_path = out.with_suffix(".stats.json")
        while not stop.is_set():
            waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(dump.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            if dump.is_set():
                dump.clear()
                tmp = out.with_suffix(".stats.tmp")
                tmp.write_text(json.dumps(stats(fleet)))
                tmp.rename(stats_path)


if __name__ == "__main__":
    flags = sys.argv[3:]
    seed = int(flags[flags.index("--seed") + 1]) if "--seed" in flags else 11
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2]), "--jump-host" in flags, seed))
