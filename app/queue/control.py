"""Queue control every process agrees on: collect now, pause, resume, clean, stats.

Nothing here reads a worker's memory: counts come from Redis (the two queues, the
retry-backoff set, the pause flag) and from the run history in SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from redis.exceptions import RedisError
from saq.job import TERMINAL_STATUSES, Job

from app.cache import Event
from app.domain import QueueStats
from app.queue.jobs import CollectContext, enqueue_manual
from app.queue.worker import FleetQueue

# wait_manual re-reads the job records at least this often (a status message lost, or
# Redis pub/sub unavailable); between reads it wakes on SAQ's status messages.
WAIT_POLL_S = 1.0
_TERMINAL = {status.value for status in TERMINAL_STATUSES}


async def collect_now(deps: CollectContext, server_ids: list[int]) -> int:
    """Queue a manual collection of each server; returns how many were newly queued
    (a server already queued by hand keeps its one job)."""
    queued = 0
    for server_id in server_ids:
        queued += await enqueue_manual(deps, server_id)
    if queued:
        await deps.cache.publish(Event(kind="queue"))
    return queued


async def wait_manual(deps: CollectContext, server_ids: list[int], timeout: float | None = None) -> None:
    """Until each server's manual job has finished (or its record is gone).

    Event-driven: SAQ publishes each job's status on a channel named by its id; a job is
    done when a terminal status arrives, without re-reading every pending record. The
    records are read once after subscribing, and again every WAIT_POLL_S as a safety net."""
    queue = deps.lanes.manual
    keys = [deps.cache.job_key("manual", server_id) for server_id in server_ids]
    if not keys:
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    pubsub = candidate = None
    try:
        with contextlib.suppress(RedisError, OSError):
            candidate = queue.redis.pubsub()
            await candidate.subscribe(*(queue.job_id(key) for key in keys))  # before the first read
            pubsub = candidate
        while keys:
            jobs = await queue.jobs(keys)
            pending = {queue.job_id(key) for key, job in zip(keys, jobs) if job is not None and job.status not in TERMINAL_STATUSES}
            keys = [key for key in keys if queue.job_id(key) in pending]
            next_read = time.monotonic() + WAIT_POLL_S
            while pending:
                now = time.monotonic()
                if deadline is not None and now > deadline:
                    raise asyncio.TimeoutError
                if now >= next_read:
                    break
                wait = next_read - now if deadline is None else min(next_read, deadline) - now
                if pubsub is None:
                    await asyncio.sleep(max(wait, 0))
                    continue
                try:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=max(wait, 0.001))
                except (RedisError, OSError):  # the subscription broke: fall back to reading
                    pubsub = None
                    continue
                if message is None or message.get("type") != "message":
                    continue
                channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
                data = message["data"].decode() if isinstance(message["data"], bytes) else str(message["data"])
                if channel in pending and data.lower() in _TERMINAL:
                    pending.discard(channel)
            keys = [key for key in keys if queue.job_id(key) in pending]
            # Out of the inner loop: every job reported finished (done), or time for a re-read.
    finally:
        if candidate is not None:
            with contextlib.suppress(Exception):
                await candidate.aclose()


async def pause(deps: CollectContext) -> None:
    await deps.cache.set_paused(True)
    await deps.cache.publish(Event(kind="queue"))


async def resume(deps: CollectContext) -> None:
    await deps.cache.set_paused(False)
    await deps.cache.publish(Event(kind="queue"))


async def stats(deps: CollectContext) -> QueueStats:
    scheduled = await deps.lanes.scheduled.counts()
    manual = await deps.lanes.manual.counts()
    runs = await deps.repo.run_counts()
    return QueueStats(
        waiting=scheduled["queued"] + manual["queued"],
        active=scheduled["active"] + manual["active"],
        delayed=await deps.cache.count_retrying(),
        completed=runs["completed"],
        failed=runs["failed"],
        scheduled=scheduled["incomplete"],  # one link per server with a live schedule
        paused=await deps.cache.is_paused(),
    )


async def clean(deps: CollectContext) -> int:
    """Remove finished runs and job records past their age or count limits; returns how many."""
    limits = deps.settings.queue
    removed = await deps.repo.clean_runs(limits.completed_max_age, limits.completed_keep, limits.failed_max_age, limits.failed_keep)
    for queue in deps.lanes:
        removed += await _clean_records(deps, queue)
    await deps.cache.publish(Event(kind="queue"))
    return removed


async def _clean_records(deps: CollectContext, queue: FleetQueue) -> int:
    limits = deps.settings.queue
    finished = await queue.finished_jobs()
    completed = [job for job in finished if job.status == "complete"]
    failed = [job for job in finished if job.status != "complete"]
    doomed = _past_limits(completed, limits.completed_max_age, limits.completed_keep)
    doomed += _past_limits(failed, limits.failed_max_age, limits.failed_keep)
    return await queue.delete_finished([job.key for job in doomed])


def _past_limits(jobs: list[Job], max_age: float, keep: int) -> list[Job]:
    cutoff_ms = (time.time() - max_age) * 1000
    newest_first = sorted(jobs, key=lambda job: job.completed, reverse=True)
    return [job for rank, job in enumerate(newest_first) if rank >= keep or job.completed < cutoff_ms]
