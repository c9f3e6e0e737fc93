"""Helpers the probe tests share (a module of its own: conftest.py cannot be imported)."""

from __future__ import annotations

from app.domain import Server
from app.sim import SimFleet


def sim_server(fleet: SimFleet, index: int = 0, **fields) -> Server:
    """Simulated host number `index` as a server to collect (key auth unless overridden)."""
    name, port = fleet.hosts[index]
    values = {"id": index + 1, "name": name, "host": fleet.address, "port": port, "auth": "key"}
    values.update(fields)
    return Server(**values)
