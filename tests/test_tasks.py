"""cancel_and_wait stops a task for sure, even one whose cancellation redis-py drops."""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis
from redis.exceptions import RedisError

from fleettop.tasks import cancel_and_wait


async def test_tasks_cancelled_while_redis_connects_end(redis_url: str):
    """Cancelled at every point of their first round trip (a fresh client connects first).
    A single cancel is lost in about a third of these on Python 3.11: asyncio.wait_for
    inside redis-py's connect returns its result and drops the cancellation."""

    async def beat(client: Redis) -> None:  # the shape of fleettop's worker heartbeat
        while True:
            with contextlib.suppress(RedisError, OSError):
                await client.zcount("fleettop-test-tasks:none", "-inf", "+inf")  # reads only
            await asyncio.sleep(2)

    for steps in range(30):
        client = Redis.from_url(redis_url)
        task = asyncio.create_task(beat(client))
        for _ in range(steps):
            await asyncio.sleep(0)
        try:
            await asyncio.wait_for(cancel_and_wait([task]), 5)
            assert task.cancelled(), f"cancelled after {steps} loop steps"
        finally:
            await client.aclose()
