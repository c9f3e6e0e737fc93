"""The repository calls of the worker's hot path and of `collect --wait`: what the one-by-one
calls they replace would have answered, and their group commit."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import event
from store_helpers import T0, add_server, latest_sample, metrics, refuse_samples_of, start_run, store_sample

from fleettop.domain import Counters
from fleettop.errors import FleettopError


async def begin(
    repo, server_id: int, key: str, *, trigger: str = "manual", attempt: int = 1, skip_disabled: bool = False
):
    return await repo.begin_collection(server_id, key, trigger=trigger, attempt=attempt, skip_disabled=skip_disabled)


async def test_begin_collection_reads_server_secret_done_and_counters_and_starts_the_run(repo):
    sid = await add_server(repo)
    first = await begin(repo, sid, "key@1")
    assert first.server == await repo.get_server_by_id(sid)
    assert first.secret == await repo.get_secret(sid)
    assert first.done is False and first.counters is None  # first contact
    run = await repo.get_run(first.run.id)
    assert (run.status, run.job_key, run.trigger, run.attempt) == ("running", "key@1", "manual", 1)
    assert run.started_at == first.run.started_at

    counters = Counters(uptime_s=100.0, cpu_total=1000, cpu_idle=900, net_rx_bytes=5, net_tx_bytes=6)
    newer = Counters(uptime_s=160.0, cpu_total=1600, cpu_idle=1400, net_rx_bytes=50, net_tx_bytes=60)
    await store_sample(repo, sid, metrics(T0), counters)
    retry = await begin(repo, sid, "key@1", trigger="retry", attempt=2)
    assert retry.done is False and retry.counters == counters
    # The first attempt, still 'running' under the same key, lost its worker.
    lost = await repo.get_run(first.run.id)
    assert (lost.status, lost.error) == ("retried", "lost: the worker running it stopped")
    await repo.finish_collection(retry.run, sid, metrics(T0 + timedelta(minutes=1)), newer)

    again = await begin(repo, sid, "key@1")
    assert again.done is True and again.run is None
    assert again.counters == newer == (await latest_sample(repo, sid)).counters
    assert [r.status for r in await repo.recent_runs(sid)] == ["ok", "retried"]  # no run for the duplicate
    assert (await begin(repo, sid, "key@2")).done is False
    assert await begin(repo, sid + 1000, "key@1") is None


async def test_a_disabled_server_starts_no_run_when_asked_to_skip_it(repo):
    sid = await add_server(repo, enabled=False)
    skipped = await begin(repo, sid, "k", trigger="scheduled", skip_disabled=True)
    assert skipped.server.enabled is False and skipped.run is None
    assert (await begin(repo, sid, "k2")).run is not None  # collect-now of a disabled server still runs
    assert len(await repo.recent_runs(sid)) == 1


async def test_finish_collection_stores_the_sample_and_finishes_the_run(repo):
    sid = await add_server(repo)
    first = await begin(repo, sid, "k")
    await repo.finish_collection(first.run, sid, metrics(T0), None)
    run = await repo.get_run(first.run.id)
    assert run.status == "ok" and run.error is None and run.finished_at is not None and run.duration_s >= 0
    assert await repo.count_samples(sid) == 1
    again = await begin(repo, sid, "k2")
    await repo.finish_collection(again.run, sid, metrics(T0), None)  # same collected_at: kept once
    assert (await repo.get_run(again.run.id)).status == "ok" and await repo.count_samples(sid) == 1


def count_commits(database) -> list[int]:
    commits = [0]

    @event.listens_for(database.engine.sync_engine, "commit")
    def _commit(_conn) -> None:
        commits[0] += 1

    return commits


async def test_concurrent_collections_share_commits_and_all_are_durable(repo, database):
    servers = [await add_server(repo, f"web{index}") for index in range(50)]
    commits = count_commits(database)

    async def one(server_id: int) -> None:
        started = await begin(repo, server_id, f"{server_id}@1")
        await asyncio.sleep(0)
        await repo.finish_collection(started.run, server_id, metrics(T0), None)

    await asyncio.gather(*(one(server_id) for server_id in servers))
    assert commits[0] <= 10  # 100 writes, one by one, would be 100 commits
    for server_id in servers:  # read back through a connection of its own: committed
        assert await repo.count_samples(server_id) == 1
        assert [(run.status, run.job_key) for run in await repo.recent_runs(server_id)] == [("ok", f"{server_id}@1")]


async def test_a_failed_write_fails_only_its_own_collection(repo, database):
    servers = [await add_server(repo, f"web{index}") for index in range(10)]
    refused, removed = servers[3], servers[7]
    await refuse_samples_of(database, refused)
    started = {server_id: await begin(repo, server_id, f"{server_id}@1") for server_id in servers}
    await repo.remove_server("web7")  # its run goes with it; its sample has no server left

    results = await asyncio.gather(
        *(repo.finish_collection(started[sid].run, sid, metrics(T0), None) for sid in servers), return_exceptions=True
    )
    failed = {sid: result for sid, result in zip(servers, results) if isinstance(result, Exception)}
    assert set(failed) == {refused, removed}
    assert "sample refused" in str(failed[refused])
    assert isinstance(failed[removed], FleettopError) and "server removed" in str(failed[removed])
    for server_id in set(servers) - {refused, removed}:
        assert await repo.count_samples(server_id) == 1
        assert (await repo.get_run(started[server_id].run.id)).status == "ok"
    assert await repo.count_samples(refused) == 0
    assert (await repo.get_run(started[refused].run.id)).status == "running"  # the job records its failure


async def test_a_caller_cancelled_before_its_turn_writes_nothing(repo):
    sid = await add_server(repo)
    other = await add_server(repo, "web2")
    pending = asyncio.ensure_future(begin(repo, sid, "k"))
    await asyncio.sleep(0)
    pending.cancel()  # before the group commit took it
    assert (await begin(repo, other, "k2")).run is not None
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert await repo.recent_runs(sid) == []


async def test_last_runs_is_the_newest_run_of_each(repo):
    a = await add_server(repo, "web1")
    b = await add_server(repo, "web2")
    c = await add_server(repo, "web3")
    for server_id, statuses in ((a, ["ok", "failed"]), (b, ["failed", "ok"])):
        for index, status in enumerate(statuses):
            run_id = await start_run(repo, server_id, job_key=f"{server_id}-{index}", trigger="manual")
            await repo.finish_run(run_id, status, "boom" if status == "failed" else None)
    lasts = await repo.last_runs([a, b, c])
    assert set(lasts) == {a, b}  # c never ran
    for server_id in (a, b):
        assert lasts[server_id] == (await repo.recent_runs(server_id, 1))[0]
    assert lasts[a].status == "failed" and lasts[b].status == "ok"
    assert await repo.last_runs([]) == {}
