"""Hosts failing under a running worker: down and back, frozen mid-command, a changed
host key. Seen through the service, as the dashboard's rows show them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from queue_helpers import service_for, wait_until

pytestmark = pytest.mark.slow


async def test_down_frozen_and_rekeyed_hosts(make_config, short_dir: Path, fleet):
    names = ["sim-0001", "sim-0002", "sim-0003"]
    data = make_config(
        servers=names,
        interval=3600,
        worker={"retries": 1},
        # Collected hourly, yet kept open: what happens to a kept connection is the subject here.
        ssh={"command_timeout": 2, "connect_timeout": 2, "keep_open_max_interval": 3600},
    )
    known_hosts = [fleet.known_hosts_path, Path(data["data_dir"]) / "known_hosts"]

    def fingerprint() -> list[str | None]:
        return [hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None for p in known_hosts]

    async with service_for(data, worker=True) as service:
        servers = {s.name: s for s in await service.resolve(names)}

        async def rows():
            return {row.server.name: row for row in await service.list_servers()}

        async def collect(*which: str):
            await service.collect_now(list(which))
            await service.wait_collected([servers[name] for name in which], timeout=30)
            return await rows()

        await wait_until(lambda: all_status(rows, "up"), 30)
        trusted = fingerprint()

        # Down: refused, shown down with its error; back: collected on the next try.
        await fleet.stop("sim-0001")
        # Frozen mid-command: the timeout closes the channel, the connection is replaced.
        fleet.freeze("sim-0002")
        # Re-keyed: refused as changed, every time, and never written to any known_hosts.
        await fleet.change_key("sim-0003")
        shown = await collect(*names)
        assert shown["sim-0001"].status == "down" and "sim-0001" in shown["sim-0001"].error
        assert shown["sim-0002"].status == "down" and "did not finish within 2 s" in shown["sim-0002"].error
        assert shown["sim-0003"].status == "down" and "host key CHANGED" in shown["sim-0003"].error
        assert fleet.host("sim-0002").channels_closed_frozen >= 1

        await fleet.start("sim-0001")
        fleet.freeze("sim-0002", False)
        before = fleet.host("sim-0002").connections_made
        for _ in range(2):
            shown = await collect(*names)
            assert shown["sim-0003"].status == "down" and "host key CHANGED" in shown["sim-0003"].error
        assert shown["sim-0001"].status == "up" and shown["sim-0002"].status == "up"
        assert fleet.host("sim-0002").connections_made == before + 1  # the hung connection was replaced
        assert fingerprint() == trusted  # never auto-accepted
        failed = [run for run in await service.repo.recent_runs(servers["sim-0003"].id, 10) if run.status == "failed"]
        assert len(failed) == 3


async def all_status(rows, status: str) -> bool:
    return all(row.status == status for row in (await rows()).values())
