"""Helpers the probe tests share (a module of its own: conftest.py cannot be imported)."""

from __future__ import annotations

import asyncio
import os

import pytest

from fleettop.domain import Server
from fleettop.probe.sim import SimFleet

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> None:
    """Skip on a developer's machine; fail in CI, where every test must run (as tests/conftest.py does)."""
    if IN_CI:
        pytest.fail(reason + " (CI=true: a missing tool fails the run)")
    pytest.skip(reason)


def sim_server(fleet: SimFleet, index: int = 0, **fields) -> Server:
    """Simulated host number `index` as a server to collect (key auth unless overridden)."""
    name, port = fleet.hosts[index]
    values = {"id": index + 1, "name": name, "host": fleet.address, "port": port, "auth": "key"}
    values.update(fields)
    return Server(**values)


async def probe_shells(user: str) -> dict[int, str]:
    """pid -> command line of the user's probe shells (`sh -s -- N serve`)."""
    process = await asyncio.create_subprocess_exec("ps", "-u", user, "-o", "pid=,args=", stdout=asyncio.subprocess.PIPE)
    output, _ = await process.communicate()
    shells = (line.strip().split(None, 1) for line in output.decode().splitlines())
    return {int(pid): args for pid, args in shells if args.endswith(" serve")}
