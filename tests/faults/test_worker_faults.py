"""Workers killed and stopped during a collect-all, and several workers with a dashboard on
one Redis: every server collected, nothing active forever, no server collected twice in
one interval, and every process reports the same queue figures."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
from fault_helpers import first_round_ok
from queue_helpers import Fleettop, run_fleettop, service_for, wait_until

from fleettop.affinity import owner
from fleettop.timing import scaled
from fleettop.tui.app import FleetApp
from fleettop.tui.widgets.bars import QueueBar

pytestmark = pytest.mark.slow


async def test_sigkill_mid_collect_all_the_other_worker_collects_everything(make_config, short_dir: Path, fleet):
    names = [name for name, _ in fleet.hosts]
    data = make_config(servers=names, interval=3600, worker={"concurrency": 2})
    config = short_dir / "config.yaml"
    doomed = await Fleettop.start(config, "--headless", name="doomed")
    rescuer = None
    try:
        async with service_for(data, worker=False) as service:
            servers = await service.resolve(names)
            await wait_until(lambda: first_round_ok(service, servers), 30)
            for name in names:
                fleet.slow(name, 6)
            assert await service.collect_now(None) == len(names)
            await wait_until(lambda: active(service, 2), 10, step=0.1)  # the doomed worker holds two
            # (service.stats() above cached a snapshot of the run counts: `queue stats` beside a worker reads it)
            rescuer = await Fleettop.start(config, "--headless", name="rescuer")
            await wait_until(lambda: workers(service, 2), 15)
            await doomed.stop(signal.SIGKILL)
            for name in names:
                fleet.slow(name, 0)
            await service.wait_collected(servers, timeout=60)
            outcomes = await service.manual_outcomes([server.id for server in servers])
            assert [o.status for o in outcomes] == ["ok"] * len(names), outcomes
            cached = await service.cache.run_counts()  # the runs closed as lost are retried, not failed runs
            assert cached is None or cached == await service.repo.run_counts(), cached
            assert (await service.repo.run_counts())["failed"] == 0  # every collection ended ok (D10)
            await wait_until(lambda: active(service, 0), 10)
            runs = [run for s in servers for run in await service.repo.recent_runs(s.id, 20)]
            assert not [run for run in runs if run.status == "running"]
            lost = [run for run in runs if run.error and run.error.startswith("lost")]
            assert 1 <= len(lost) <= 2, [(run.server_name, run.status, run.error) for run in runs]  # its in-flight jobs
            assert (await service.stats()).scheduled == len(names)
            print(f"SIGKILL: {len(names)} servers, {len(lost)} in flight lost and re-run, all collected")
    finally:
        if rescuer is not None:
            assert await rescuer.stop() == 0, rescuer.text()[-2000:]
        await doomed.stop(signal.SIGKILL)


async def test_sigterm_mid_collect_all_finishes_or_requeues_in_flight_jobs(make_config, short_dir: Path, fleet):
    names = [name for name, _ in fleet.hosts]
    data = make_config(servers=names, interval=3600, worker={"concurrency": 4, "shutdown_grace": 2})
    config = short_dir / "config.yaml"
    worker = await Fleettop.start(config, "--headless", name="stopping")
    async with service_for(data, worker=False) as service:
        servers = await service.resolve(names)
        await wait_until(lambda: first_round_ok(service, servers), 30)
        quick, slow = names[:2], names[2:]
        for name in quick:
            fleet.slow(name, 1)  # finishes within the grace period
        for name in slow:
            fleet.slow(name, 30)  # does not: goes back to the queue
        await service.collect_now(None)
        await wait_until(lambda: active(service, 4), 10, step=0.1)
        assert await worker.stop(signal.SIGTERM, timeout=20) == 0
        log = worker.text()
        assert "Traceback" not in log
        lane = service.context.lanes.manual
        jobs = {s.name: await lane.job(service.cache.job_key("manual", s.id)) for s in servers}
        statuses = {name: job.status.value for name, job in jobs.items()}
        assert all(statuses[name] == "complete" for name in quick), statuses
        assert all(statuses[name] == "queued" for name in slow), statuses
        assert (await service.stats()).active == 0
        for name in names:
            fleet.slow(name, 0)
        successor = await Fleettop.start(config, "--headless", name="successor")
        try:
            await service.wait_collected(servers, timeout=40)
            assert [o.status for o in await service.manual_outcomes([s.id for s in servers])] == ["ok"] * len(names)
        finally:
            assert await successor.stop() == 0


async def test_two_headless_workers_and_a_dashboard_share_one_redis(make_config, short_dir: Path, fleet):
    names = [name for name, _ in fleet.hosts]
    interval = 10
    data = make_config(servers=names, interval=interval, worker={"concurrency": 2})
    config = short_dir / "config.yaml"
    headless = [await Fleettop.start(config, "--headless", name=f"worker{n}") for n in (1, 2)]
    try:
        async with service_for(data, worker=True) as service:
            servers = await service.resolve(names)
            app = FleetApp(service, config_path=config)
            async with app.run_test(size=(160, 40)) as pilot:

                async def three_rounds() -> bool:
                    await pilot.pause(0.1)
                    runs = [await service.repo.recent_runs(s.id, 20) for s in servers]
                    return all(sum(r.status == "ok" and r.trigger == "scheduled" for r in rs) >= 3 for rs in runs)

                await wait_until(three_rounds, 50, step=0.5)
                await service.pause()  # a still moment, to compare every process's figures

                async def quiet() -> bool:  # nothing running, and every server's next link due and held
                    await pilot.pause(0.1)
                    stats = await service.stats()
                    return stats.active == 0 and stats.waiting == len(servers)

                await wait_until(quiet, 20)
                mine = (await service.stats()).model_dump()
                code, out, err = await run_fleettop(config, "queue", "stats", "--json")
                assert code == 0, err

                async def bar_refreshed() -> str | None:  # the dashboard's counts, refreshed every 1.5 s
                    await pilot.pause(0.1)
                    shown = str(app.dashboard.query_one(QueueBar).render())
                    return shown if "PAUSED" in shown and f"completed {mine['completed']}" in shown else None

                bar = await wait_until(bar_refreshed, 10)
                await service.resume()
            total_ok, all_gaps = 0, []
            for server in servers:
                runs = await service.repo.recent_runs(server.id, 20)
                done = sorted(
                    (r for r in runs if r.status == "ok" and r.trigger == "scheduled"), key=lambda r: r.started_at
                )
                keys = [r.job_key for r in done]
                assert len(set(keys)) == len(keys), keys  # one collection per planned slot
                planned = [planned_at(key) for key in keys]
                gaps = [round(b - a, 2) for a, b in zip(planned, planned[1:])]
                detail = (server.name, gaps, [(k, r.started_at.isoformat()) for k, r in zip(keys, done)])
                assert all(gap >= scaled(interval) - 0.5 for gap in gaps), detail  # never twice per interval
                assert all(gap <= scaled(interval) + 2.0 for gap in gaps), detail  # none skipped
                total_ok += len(done)
                all_gaps += gaps
            min_gap, max_gap = min(all_gaps), max(all_gaps)

            # A manual collect-all is shared by the live workers as the schedule is: each server
            # by the worker it belongs to (fleettop.affinity), once the dashboard's has left.
            await service.stop_worker()
            ring = await service.cache.ring()
            before = [len(worker.text()) for worker in headless]
            await service.collect_now(None)
            await service.wait_collected(servers, timeout=30)
    finally:
        codes = [await worker.stop() for worker in headless]
    assert codes == [0, 0]
    # Read once they have stopped: a worker's log lines reach its output from a thread.
    took = {
        re.search(r"worker (\S+) started", worker.text()).group(1): worker.text()[start:]
        for worker, start in zip(headless, before)
    }
    assert sorted(took) == sorted(ring)
    for server in servers:
        assert f"collected {server.name} " in took[owner(server.id, ring)], (server.name, ring)
    assert json.loads(out) == mine
    assert "PAUSED" in bar and f"completed {mine['completed']}" in bar and f"scheduled {mine['scheduled']}" in bar
    print(
        f"two workers + dashboard: {len(names)} servers, {total_ok} scheduled collections, planned gaps {min_gap}-{max_gap}s, "
        f"stats {mine}"
    )


async def active(service, count: int) -> bool:
    return (await service.stats()).active == count


async def workers(service, count: int) -> bool:
    return await service.workers_alive() >= count


def planned_at(job_key: str) -> float:
    """The time a schedule link was planned for, from its run key (`<key>@<scheduled s or queued ms>`)."""
    stamp = float(job_key.rsplit("@", 1)[1])
    return stamp / 1000 if stamp > 1e11 else stamp
