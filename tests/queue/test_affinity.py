"""Several workers on one real Redis: the dequeue script's owner (Lua) is fleettop.affinity's
(Python), and the sweep re-runs only the jobs of workers that are gone."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis
from saq.job import Status

from fleettop.affinity import owned_by, owner
from fleettop.cache import Cache
from fleettop.domain import WorkerInfo
from fleettop.queue.control import enqueue_manual
from fleettop.queue.worker import FleetQueue


def queue_for(redis_url: str, cache: Cache, member: str) -> FleetQueue:
    """The manual queue as one worker process sees it (its own client), `member` of the ring."""
    queue = FleetQueue(
        Redis.from_url(redis_url), cache.queue_name("manual"), paused_key=cache.paused_key, ring_key=cache.ring_key
    )
    queue.ring_member = member
    return queue


async def drain(queue: FleetQueue) -> set[int]:
    """The server ids of every job this queue's dequeue hands out, until it hands out none."""
    taken: set[int] = set()
    while (job := await queue.dequeue()) is not None:
        taken.add(job.kwargs["server_id"])
    return taken


def test_owner_is_stable_and_moves_only_what_a_new_member_takes():
    servers = range(1, 3001)
    two = ["a:1:x", "b:2:y"]
    three = [*two, "c:3:z"]
    before = {server: owner(server, two) for server in servers}
    after = {server: owner(server, three) for server in servers}
    moved = [server for server in servers if before[server] != after[server]]
    assert all(after[server] == "c:3:z" for server in moved)  # none moves between the old two
    assert 800 < len(moved) < 1200  # about a third go to the newcomer
    assert owner(7, []) is None
    assert owned_by("a:1:x", servers, ["a:1:x"]) == set(servers)


async def test_each_ring_member_takes_exactly_the_jobs_of_its_own_servers(make_settings, redis_url, prefix):
    settings = make_settings(redis={"url": redis_url, "prefix": prefix})
    client = Redis.from_url(redis_url)
    cache = Cache(client, settings)
    ring = ["alpha:10:aaaa", "beta:20:bbbb", "gamma:30:cccc"]
    servers = list(range(1, 301))
    queues = [queue_for(redis_url, cache, member) for member in [*ring, ""]]
    try:
        for member in ring:
            await cache.beat(WorkerInfo(id=member, host=member, pid=1, scheduling=True), 60)
        outsider = WorkerInfo(id="cli:40:dddd", host="cli", pid=40, scheduling=False)
        assert await cache.beat(outsider, 60) == sorted(ring)  # not a member: the ring unchanged
        await enqueue_manual(queues[0], cache, servers)

        assert await drain(queues[3]) == set()  # outside the ring: takes none while it has members
        taken = {member: await drain(queue) for member, queue in zip(ring, queues)}
        for member in ring:
            assert taken[member] == owned_by(member, servers, ring), member
        assert set().union(*taken.values()) == set(servers)
        assert all(60 < len(mine) < 140 for mine in taken.values())  # shared about evenly

        workers = await cache.workers()
        assert [worker.id for worker in workers] == sorted([*ring, outsider.id])

        # With no member left (all gone without a word), any process takes the jobs.
        await client.zadd(cache.ring_key, dict.fromkeys(ring, time.time() - 1))
        await enqueue_manual(queues[0], cache, [1000, 1001])
        assert await drain(queues[3]) | await drain(queues[3]) == {1000, 1001}
    finally:
        for queue in queues:
            await queue.redis.aclose()
        await client.aclose()


async def test_the_sweep_judges_each_job_as_it_is_when_its_turn_comes(make_settings, redis_url, prefix):
    """A killed worker's job is swept (re-queued), while a live worker's job, beating all along,
    is left alone, though the sweep waits a second on the first before it reaches the second:
    judged on the sweep's first reading, it would have looked stuck by then and been run twice."""
    settings = make_settings(redis={"url": redis_url, "prefix": prefix})
    client = Redis.from_url(redis_url)
    cache = Cache(client, settings)
    queue = queue_for(redis_url, cache, "")
    try:
        await enqueue_manual(queue, cache, [1, 2])
        dead, alive = [await queue.dequeue() for _ in range(2)]
        for job in (dead, alive):
            job.heartbeat = 1  # stuck once untouched for a second
            await job.update()
        dead.touched -= 60_000  # its worker stopped beating a minute ago
        await client.set(dead.id, queue.serialize(dead))

        swept_yet = asyncio.Event()

        async def beat() -> None:
            # Ends on the event, not on cancel(): redis-py may swallow a cancel that lands
            # inside update(), and the loop would beat on past the test (seen once in CI).
            while not swept_yet.is_set():
                await asyncio.sleep(0.2)
                await alive.update()

        beating = asyncio.create_task(beat())
        try:
            swept = await queue.sweep(lock=1)
        finally:
            swept_yet.set()
            await beating
        assert swept == [dead.id]
        assert (await queue.job(alive.key)).status == Status.ACTIVE
        assert (await queue.job(dead.key)).status == Status.QUEUED  # retried: attempts were left
    finally:
        await queue.redis.aclose()
        await client.aclose()
