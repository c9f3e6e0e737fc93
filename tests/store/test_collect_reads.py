"""The repository calls of the worker's hot path and of `collect --wait`: what the one-by-one
calls they replace would have answered."""

from __future__ import annotations

from datetime import timedelta

from app.domain import Counters
from store_helpers import T0, add_server, metrics


async def test_collect_inputs_reads_server_secret_done_and_counters_at_once(repo):
    sid = await add_server(repo)
    first = await repo.collect_inputs(sid, "key@1")
    assert first.server == await repo.get_server_by_id(sid)
    assert first.secret == await repo.get_secret(sid)
    assert first.done is False and first.counters is None  # first contact

    counters = Counters(uptime_s=100.0, cpu_total=1000, cpu_idle=900, net_rx_bytes=5, net_tx_bytes=6)
    newer = Counters(uptime_s=160.0, cpu_total=1600, cpu_idle=1400, net_rx_bytes=50, net_tx_bytes=60)
    await repo.add_sample(sid, metrics(T0), counters)
    run_id = await repo.start_run(sid, job_key="key@1", trigger="manual")
    assert (await repo.collect_inputs(sid, "key@1")).done is False  # running, not done
    assert await repo.finish_collection(run_id, sid, metrics(T0 + timedelta(minutes=1)), newer) is True

    after = await repo.collect_inputs(sid, "key@1")
    assert after.done is True and after.done == await repo.run_done("key@1")
    assert after.counters == newer == (await repo.latest_sample(sid)).counters
    assert (await repo.collect_inputs(sid, "key@2")).done is False
    assert await repo.collect_inputs(sid + 1000, "key@1") is None


async def test_finish_collection_is_add_sample_and_finish_run(repo):
    sid = await add_server(repo)
    run_id = await repo.start_run(sid, job_key="k", trigger="scheduled")
    assert await repo.finish_collection(run_id, sid, metrics(T0), None) is True
    run = await repo.get_run(run_id)
    assert run.status == "ok" and run.error is None and run.finished_at is not None and run.duration_s >= 0
    assert await repo.count_samples(sid) == 1
    again = await repo.start_run(sid, job_key="k2", trigger="scheduled")
    assert await repo.finish_collection(again, sid, metrics(T0), None) is False  # same collected_at: kept once
    assert (await repo.get_run(again)).status == "ok" and await repo.count_samples(sid) == 1


async def test_last_runs_is_last_run_of_each(repo):
    a = await add_server(repo, "web1")
    b = await add_server(repo, "web2")
    c = await add_server(repo, "web3")
    for server_id, statuses in ((a, ["ok", "failed"]), (b, ["failed", "ok"])):
        for index, status in enumerate(statuses):
            run_id = await repo.start_run(server_id, job_key=f"{server_id}-{index}", trigger="manual")
            await repo.finish_run(run_id, status, "boom" if status == "failed" else None)
    lasts = await repo.last_runs([a, b, c])
    assert set(lasts) == {a, b}  # c never ran
    for server_id in (a, b):
        assert lasts[server_id] == await repo.last_run(server_id)
    assert lasts[a].status == "failed" and lasts[b].status == "ok"
    assert await repo.last_runs([]) == {}
