"""Simulated hosts in a process of their own (so their CPU is not fleettop's):
`python tests/bench/sim_host.py COUNT OUT.json [--jump-host]` starts fleettop.probe.sim.SimFleet(COUNT),
writes where the hosts are to OUT.json, and runs until SIGTERM/SIGINT. With --jump-host the
first host also forwards to the others, as a bastion."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from fleettop.probe.sim import SimFleet


async def main(count: int, out: Path, jump_host: bool = False) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # reboots=False: a simulated reboot resets counters on a timer; the figures are about speed.
    async with SimFleet(count, seed=11, reboots=False) as fleet:
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
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2]), "--jump-host" in sys.argv[3:]))
