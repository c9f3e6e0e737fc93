"""Scale-out on a real sshd (#18): three `fleettop --headless` workers on one Redis and one
PostgreSQL, 20 hosts (one sshd listening on 20 ports, one "host" per port), every 10 s. Each
host holds exactly one fleettop session however many workers run, through a worker killed
and a worker started again, and no server is collected twice within an interval."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import pytest
import yaml
from probe_helpers import SSHD_ONE_AT_A_TIME, probe_shells, running_sshd
from queue_helpers import Fleettop, service_for, wait_until

from fleettop.affinity import owner
from fleettop.queue.runtime import HEARTBEAT_TTL_S
from fleettop.queue.scheduler import RECONCILE_EVERY_S
from fleettop.timing import scaled

pytestmark = [pytest.mark.slow, pytest.mark.sshd, SSHD_ONE_AT_A_TIME]

HOSTS = 20
INTERVAL = 10  # seconds on the tests' clock (FLEETTOP_TEST_TIME_SCALE)


@pytest.fixture(scope="module")
def fleet_sshd():
    # 20 connections from one address at once: more than OpenSSH's default MaxStartups lets in.
    with running_sshd(HOSTS, "MaxStartups 100:30:200\n") as sshd:
        yield sshd


async def sessions_per_port(ports: tuple[int, ...]) -> dict[int, int]:
    """Established TCP connections to each of sshd's ports (the sshd side of `ss`)."""
    process = await asyncio.create_subprocess_exec("ss", "-tnH", "state", "established", stdout=asyncio.subprocess.PIPE)
    output, _ = await process.communicate()
    counts = dict.fromkeys(ports, 0)
    for line in output.decode().splitlines():
        local = line.split()[2]  # Recv-Q Send-Q Local Peer (state given: no state column)
        port = int(local.rsplit(":", 1)[1])
        if port in counts:
            counts[port] += 1
    return counts


def worker_id(worker: Fleettop) -> str:
    found = re.search(r"worker (\S+) started", worker.text())
    assert found, worker.text()[-1000:]
    return found.group(1)


async def test_three_workers_hold_one_session_per_host_through_a_kill_and_a_restart(
    fleet_sshd, short_dir: Path, redis_url, prefix, pg_database_url
):
    ports = fleet_sshd.ports
    data = {
        "data_dir": str(short_dir / "data"),
        "database": {"url": pg_database_url},
        "redis": {"url": redis_url, "prefix": prefix},
        "worker": {"concurrency": 5, "shutdown_grace": 2},
        "ssh": {
            "known_hosts": str(fleet_sshd.known_hosts),
            "key_file": str(fleet_sshd.key_file),
            "username": fleet_sshd.user,
            "connect_timeout": 5,
            "command_timeout": 5,
            # 20 connects at once to one sshd's address: let them in as 20 hosts would.
            "max_concurrent_connects": 32,
        },
        "servers": [
            {"name": f"host-{n:02d}", "host": "127.0.0.1", "port": port, "auth": "key", "interval": INTERVAL}
            for n, port in enumerate(ports, 1)
        ],
    }
    config = short_dir / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    shells_before = set(await probe_shells(fleet_sshd.user))

    async def one_session_each() -> bool:
        return set((await sessions_per_port(ports)).values()) == {1}

    async def steady_one_session_each() -> None:
        """Exactly one session per host, and still so over a couple of heartbeats."""
        try:
            # Settling takes a heartbeat and an interval after the last change of the ring (a
            # scaled 12 s); 30 s of the wall clock leave room for a machine slowed by the suite.
            await wait_until(one_session_each, max(scaled(60), 30), step=0.2)
        except AssertionError:
            raise AssertionError(f"sessions per port: {await sessions_per_port(ports)}") from None
        for _ in range(5):
            counts = await sessions_per_port(ports)
            assert set(counts.values()) == {1}, counts
            await asyncio.sleep(0.3)
        shells = set(await probe_shells(fleet_sshd.user)) - shells_before
        assert len(shells) == HOSTS  # one probe shell per host, waiting for its next request

    workers = [await Fleettop.start(config, "--headless", name=f"worker{n}") for n in (1, 2, 3)]
    try:
        async with service_for(data, worker=False) as service:
            servers = await service.resolve([server["name"] for server in data["servers"]])

            async def collected_since(moment: float, among) -> bool:
                latest = await service.repo.latest_samples()
                return all(
                    server.id in latest and latest[server.id].collected_at.timestamp() > moment for server in among
                )

            # A minute on: every host collected, one session each.
            await asyncio.sleep(scaled(60))
            await steady_one_session_each()
            stats = await service.stats()
            ring = [worker_id(worker) for worker in workers]
            assert sorted(worker.id for worker in stats.workers) == sorted(ring)
            assert sum(worker.servers for worker in stats.workers) == HOSTS
            assert sum(worker.connections for worker in stats.workers) == HOSTS

            # SIGKILL the worker with the most servers: the others take them within a reconcile
            # period of its mark expiring, and still hold one session per host.
            victim = max(workers, key=lambda worker: sum(owner(s.id, ring) == worker_id(worker) for s in servers))
            orphans = [server for server in servers if owner(server.id, ring) == worker_id(victim)]
            assert orphans
            await victim.stop(signal.SIGKILL)
            killed_at = asyncio.get_running_loop().time()
            moment = (await service.repo.latest_samples())[orphans[0].id].collected_at.timestamp()
            await wait_until(
                lambda: collected_since(moment, orphans), HEARTBEAT_TTL_S + RECONCILE_EVERY_S + scaled(INTERVAL) + 5
            )
            taken_over_in = asyncio.get_running_loop().time() - killed_at
            await steady_one_session_each()

            # Started again: the servers are shared among three again, one session each.
            workers.remove(victim)
            workers.append(await Fleettop.start(config, "--headless", name="worker4"))
            newcomer = workers[-1]
            await wait_until(lambda: "collected host-" in newcomer.text(), scaled(60), step=0.2)
            await steady_one_session_each()
            stats = await service.stats()
            assert len(stats.workers) == 3 and all(worker.servers > 0 for worker in stats.workers), stats.workers

            # Never twice within an interval, before, during or after the kill and the restart:
            # each scheduled run's job key carries the time it was planned for (its link's place
            # on the server's grid), and those are an interval apart at least.
            for server in servers:
                planned = sorted(
                    float(run.job_key.rsplit("@", 1)[1])
                    for run in await service.repo.recent_runs(server.id, 200)
                    if run.trigger == "scheduled" and run.attempt == 1
                )
                gaps = [later - earlier for earlier, later in zip(planned, planned[1:])]
                assert len(planned) >= 5 and min(gaps) >= scaled(INTERVAL) - 0.01, (server.name, gaps)
    finally:
        codes = [await worker.stop() for worker in workers]
    logs = [worker.text() for worker in workers]
    assert codes == [0, 0, 0], [log[-2000:] for log in logs]
    assert not any("Traceback" in log for log in logs)
    print(f"orphans of the killed worker collected again {taken_over_in:.1f} s after the kill")
