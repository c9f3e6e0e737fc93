"""PostgreSQL restarted under a running worker (a private instance: the shared cluster
is never touched): connections come back by themselves, and probes answered while the
database was away are not silently dropped -- their runs are retried and stored."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fault_helpers import first_round_ok
from queue_helpers import service_for, wait_until
from sqlalchemy import text

from fleettop.config import Settings
from fleettop.store.db import DatabaseError, open_database
from fleettop.timing import SCALE

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

NAMES = ["sim-0001", "sim-0002", "sim-0003", "sim-0004"]


async def test_postgres_restart_mid_collection_loses_no_sample(make_config, short_dir: Path, fleet, private_postgres):
    data = make_config(
        servers=NAMES,
        interval=3600,
        database={"url": private_postgres.url},
        worker={
            "concurrency": 4,
            "retries": 4,
            "retry_backoff": 2 / SCALE,
        },  # real seconds: the retries outlast the outage
    )
    async with service_for(data, worker=True) as service:
        servers = await service.resolve(NAMES)

        await wait_until(lambda: first_round_ok(service, servers), 30)
        answers_before = sum(fleet.host(name).answers for name in NAMES)
        for name in NAMES:
            fleet.slow(name, 2.0)  # each probe answers two seconds late...
        await service.collect_now(NAMES)

        async def all_running() -> bool:
            lasts = await service.repo.last_runs([s.id for s in servers])
            runs = [lasts.get(s.id) for s in servers]
            return all(run is not None and run.status == "running" and run.trigger == "manual" for run in runs)

        await wait_until(all_running, 10, step=0.1)
        private_postgres.stop("immediate")  # ...and the database dies under them
        down_at = time.monotonic()
        await wait_until(lambda: sum(fleet.host(name).answers for name in NAMES) >= answers_before + len(NAMES), 10)
        await asyncio.sleep(2.5)  # the probes answer while the database is away
        answered_in_outage = sum(fleet.host(name).answers for name in NAMES) - answers_before
        health = await service.health()
        assert health.database is False and health.redis is True
        for name in NAMES:
            fleet.slow(name, 0)
        private_postgres.start()
        outage = time.monotonic() - down_at
        await service.wait_collected(servers, timeout=60)

        for server in servers:
            outcome = (await service.manual_outcomes([server.id]))[0]
            assert outcome.status == "ok", (server.name, outcome)
        health = await service.health()
        assert health.database is True
        runs = [run for s in servers for run in await service.repo.recent_runs(s.id, 20)]
        assert not [run for run in runs if run.status == "running"], "a run left running forever"
        manual_ok = [run for run in runs if run.status == "ok" and run.trigger != "scheduled"]
        samples = sum([await service.repo.count_samples(s.id) for s in servers])
        ok_runs = sum(run.status == "ok" for run in runs)
        probes = sum(fleet.host(name).answers for name in NAMES) - answers_before
    # Every probe answered during the outage was retried to a stored sample; every ok run has its sample.
    assert answered_in_outage == len(NAMES)
    assert len(manual_ok) == len(NAMES) and all(run.attempt >= 2 for run in manual_ok)
    assert samples == ok_runs
    print(
        f"outage {outage:.1f}s, probes answered in the outage {answered_in_outage}, probes in all {probes}, "
        f"samples {samples}, ok runs {ok_runs}, lost 0"
    )


async def test_postgres_tls_options_are_passed_through(private_postgres, short_dir: Path):
    """libpq's `sslmode` (and asyncpg's `ssl`) reach the driver: against this server (no TLS)
    a required TLS is refused as such, a disabled one connects; a bad mode or a missing
    certificate file is one clear line, never a TypeError traceback."""

    def settings(query: str) -> Settings:
        return Settings.model_validate(
            {"data_dir": str(short_dir / "d"), "database": {"url": private_postgres.url + query}}
        )

    for query in (
        "?sslmode=require",
        "?ssl=require",
        "?sslmode=verify-full&sslrootcert=/etc/ssl/certs/ca-certificates.crt",
    ):
        with pytest.raises(DatabaseError) as caught:
            await open_database(settings(query))
        assert "ssl" in str(caught.value).lower(), (query, str(caught.value))
    for query in ("?sslmode=bogus", "?sslmode=verify-ca&sslrootcert=/nonexistent/root.crt"):
        with pytest.raises(DatabaseError) as caught:
            await open_database(settings(query))
        assert str(caught.value).startswith("database.url: "), (query, str(caught.value))
    for query in ("?sslmode=disable", "?ssl=disable", "?sslmode=prefer"):
        database = await open_database(settings(query))
        try:
            async with database.engine.connect() as conn:
                assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        finally:
            await database.close()


async def test_a_last_attempt_cut_by_the_database_leaves_no_run_running(
    make_config, short_dir: Path, fleet, private_postgres
):
    data = make_config(
        servers=["sim-0001"], interval=3600, database={"url": private_postgres.url}, worker={"retries": 1}
    )
    async with service_for(data, worker=True) as service:
        server = (await service.resolve(["sim-0001"]))[0]

        async def last_is(status: str) -> bool:
            run = (await service.repo.last_runs([server.id])).get(server.id)
            return run is not None and run.status == status

        await wait_until(lambda: last_is("ok"), 30)
        fleet.slow("sim-0001", 1.5)
        await service.collect_now(["sim-0001"])
        await wait_until(lambda: last_is("running"), 10, step=0.1)
        private_postgres.stop("immediate")
        await service.wait_collected([server], timeout=30)  # the one attempt failed: its job is over
        private_postgres.start()

        async def none_running() -> bool:
            return not [run for run in await service.repo.recent_runs(server.id, 10) if run.status == "running"]

        await wait_until(none_running, 15)  # the failed attempt's end is written once the database is back
        runs = await service.repo.recent_runs(server.id, 10)
    assert [run.status for run in runs] == ["failed", "ok"], [(run.id, run.status, run.error) for run in runs]


async def test_a_frozen_postgres_is_shown_as_down(make_config, short_dir: Path, fleet, private_postgres):
    """PostgreSQL frozen (SIGSTOP: connections open, nothing answers, as in a partition):
    health() answers "database down" within seconds instead of hanging the header."""
    import os
    import signal

    data = make_config(servers=["sim-0001"], interval=3600, database={"url": private_postgres.url})
    async with service_for(data, worker=False) as service:
        assert (await service.health()).database is True
        pids = private_postgres.pids()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        try:
            health = await asyncio.wait_for(service.health(), 10)
        except TimeoutError:
            health = None
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        answered_in = time.monotonic() - started
        assert health is not None and health.database is False, "health() hung on a frozen database"
        assert (await service.health()).database is True
    print(f"frozen postgres reported down in {answered_in:.1f}s")
