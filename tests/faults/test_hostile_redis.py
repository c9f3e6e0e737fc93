"""A Redis writer is not trusted (security review findings 4 and 5): jobs written straight
into Redis collect nothing they should not, and audit entries relayed through Redis are
checked before they are recorded."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis
from saq.job import Status
from saq.queue.redis import RedisQueue

from fleettop.cache import Event

from queue_helpers import run_fleettop, service_for, wait_until

ESC = "\x1b"


async def _inject_job(redis_url: str, queue_name: str, key: str, **kwargs) -> RedisQueue:
    """What the review's inject_job.py does: a `collect` job written into the queue by a
    client that is no fleettop process (then a "queue" event, as anyone may publish)."""
    client = Redis.from_url(redis_url)
    queue = RedisQueue(client, name=queue_name)
    assert await queue.enqueue("collect", key=key, timeout=30, retries=3, **kwargs) is not None
    return queue


async def _finished(queue: RedisQueue, key: str):
    job = await queue.job(key)
    return job if job is not None and job.status in (Status.COMPLETE, Status.FAILED) else None


async def test_a_forged_job_never_collects_a_disabled_server_nor_stores_a_forged_trigger(make_config, fleet, redis_url):
    first, second = fleet.server_configs()[:2]
    data = make_config(servers=[], interval=3600, worker={"retries": 3})
    async with service_for(data, worker="manual") as service:
        await service.add_server(first)
        await service.add_server(second.model_copy(update={"enabled": False}))
        enabled, disabled = await service.resolve([first.name, second.name])
        manual = service.cache.queue_name("manual")
        forged = {
            "x-injected-disabled": {"server_id": disabled.id, "trigger": "manual"},
            "x-injected-scheduled": {"server_id": disabled.id, "trigger": "scheduled"},
            "x-injected-trigger": {"server_id": enabled.id, "trigger": "\x1b]0;PWN\x1b\\"},
            "x-injected-id": {"server_id": str(enabled.id), "trigger": "manual"},
        }
        queues = {key: await _inject_job(redis_url, manual, key, **kwargs) for key, kwargs in forged.items()}
        await service.cache.publish(Event(kind="queue"))
        jobs = {key: await wait_until(lambda: _finished(queue, key), 20) for key, queue in queues.items()}
        for queue in queues.values():
            await queue.redis.aclose()

        assert fleet.host(second.name).connections_made == 0  # its password never left
        assert fleet.host(first.name).connections_made == 0
        assert jobs["x-injected-disabled"].result == {"status": "disabled"}
        assert jobs["x-injected-scheduled"].result == {"status": "disabled"}
        for key in ("x-injected-trigger", "x-injected-id"):
            job = jobs[key]
            assert job.status == Status.FAILED and job.attempts == 1, (key, job.status, job.attempts)  # not retried
            assert "RefusedJob: job refused" in job.error and ESC not in job.error.splitlines()[-1]
        assert await service.repo.recent_runs(enabled.id, 10) == []
        assert await service.repo.recent_runs(disabled.id, 10) == []

        # the same worker collects what fleettop itself asks for: the sim host counts the connection
        await service.collect_now([first.name])
        await service.wait_collected([enabled], timeout=30)
        assert (await service.manual_outcome(enabled)).status == "ok"
        assert fleet.host(first.name).connections_made == 1
        assert [run.trigger for run in await service.repo.recent_runs(enabled.id, 10)] == ["manual"]


async def test_collecting_a_disabled_server_by_name_is_refused(make_config, short_dir: Path, fleet):
    first, second = fleet.server_configs()[:2]
    data = make_config(servers=[])
    async with service_for(data, worker=False) as service:
        await service.add_server(first)
        await service.add_server(second.model_copy(update={"enabled": False}))
    code, out, err = await run_fleettop(short_dir / "config.yaml", "collect", second.name, "--wait")
    assert code == 2, (code, out, err)
    assert err == f"fleettop: {second.name} is disabled: not collected (enable with: fleettop servers edit NAME --enable)\n"
    assert fleet.host(second.name).connections_made == 0
