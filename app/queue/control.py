"""Queue control every process agrees on: collect now, pause, resume, clean, stats.

Nothing here reads a worker's memory: counts come from Redis (the two queues, the
retry-backoff set, the pause flag) and from the run history in SQL.

Light to import (no SQLAlchemy, no SSH): a command attached to a running worker
(fleettop.cli.attached) queues and waits with these functions alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import typing as t

from redis.exceptions import RedisError
from saq.job import TERMINAL_STATUSES, Job, Status
from saq.utils import now as now_ms

from fleettop.cache import Cache, Event
from fleettop.domain import CleanResult, QueueStats
from fleettop.queue.contract import CollectContext, job_options

if t.TYPE_CHECKING:
    from fleettop.queue.worker import FleetQueue

# wait_manual re-reads the job records at least this often (a status message lost, or
# Redis pub/sub unavailable); between reads it wakes on SAQ's status messages.
WAIT_POLL_S = 1.0
_TERMINAL = {status.value for status in TERMINAL_STATUSES}

# SAQ's own enqueue script (saq/queue/redis.py RedisQueue._enqueue), run here for many
# jobs in one pipeline: a key already queued, waiting or running is refused.
_ENQUEUE = """
if not redis.call('ZSCORE', KEYS[1], KEYS[2]) and redis.call('EXISTS', KEYS[4]) == 0 then
    redis.call('SET', KEYS[2], ARGV[1])
    redis.call('ZADD', KEYS[1], ARGV[2], KEYS[2])
    if ARGV[2] == '0' then redis.call('RPUSH', KEYS[3], KEYS[2]) end
    return 1
else
    return nil
end
"""


async def enqueue_link(deps: CollectContext, server_id: int, when: float) -> bool:
    """Put a server's schedule link (its one stable key) on the scheduled queue, due at `when`.
    False when the link already exists: SAQ refuses a key that is queued, waiting or running."""
    due = 0 if when <= time.time() else when  # a float: SAQ stores it as the sorted-set score
    job = await deps.lanes.scheduled.enqueue(
        "collect",
        key=deps.cache.job_key("scheduled", server_id),
        scheduled=due,
        server_id=server_id,
        trigger="scheduled",
        **job_options(deps.settings),
    )
    return job is not None


async def enqueue_manual(
    queue: FleetQueue, cache: Cache, server_ids: list[int], *, audit: tuple[str, str, str] | None = None
) -> int:
    """Queue a manual collection of each server, ahead of any backlog, in one round trip
    (with `audit`, an (action, target, detail) entry for cache.request_audit in the same
    one); returns how many were newly queued (a server already queued by hand keeps its
    one job). The "queue" event is published when any was."""
    options = job_options(cache.settings)
    script = queue.redis.register_script(_ENQUEUE)
    async with queue.redis.pipeline(transaction=False) as pipe:
        for server_id in server_ids:
            job = Job(
                "collect",
                kwargs={"server_id": server_id, "trigger": "manual"},
                queue=queue,
                key=cache.job_key("manual", server_id),
                queued=now_ms(),
                status=Status.QUEUED,
                **options,
            )
            await script(
                keys=[queue._incomplete, job.id, queue._queued, job.abort_id],
                args=[queue.serialize(job), job.scheduled],
                client=pipe,
            )
        if audit is not None:
            cache.request_audit(pipe, *audit)
        replies = await pipe.execute()
    queued = sum(1 for reply in replies[: len(server_ids)] if reply)
    if queued:
        await cache.publish(Event(kind="queue"))
    return queued


def collect_audit(names: list[str], *, everything: bool) -> tuple[str, str, str]:
    """The audit entry (action, target, detail) of a manual collection of these servers."""
    if everything:
        return ("collect.all", "*", f"{len(names)} servers")
    return ("collect", ",".join(names), "")


async def collect_now(deps: CollectContext, server_ids: list[int]) -> int:
    """Queue a manual collection of each server; returns how many were newly queued."""
    return await enqueue_manual(deps.lanes.manual, deps.cache, server_ids)


async def wait_manual(
    queue: FleetQueue,
    cache: Cache,
    server_ids: list[int],
    timeout: float | None = None,
    on_retry: t.Callable[[Job], None] | None = None,
) -> list[Job | None]:
    """Until each server's manual job has finished (or its record is gone).

    Event-driven: SAQ publishes each job's status on a channel named by its id; a job is
    done when a terminal status arrives, without re-reading every pending record. The
    records are read once after subscribing, and again every WAIT_POLL_S as a safety net.
    `on_retry` is told of each failed attempt another will follow (the record, queued
    again, carries its attempts, retry_delay and meta["failure"]), once each.
    Returns the job records as they finished (None: a record gone)."""
    every_key = keys = [cache.job_key("manual", server_id) for server_id in server_ids]
    if not keys:
        return []
    deadline = None if timeout is None else time.monotonic() + timeout
    told: dict[str, int] = {}  # job key -> the attempts on_retry was told of
    pubsub = candidate = None
    try:
        with contextlib.suppress(RedisError, OSError):
            candidate = queue.redis.pubsub()
            await candidate.subscribe(*(queue.job_id(key) for key in keys))  # before the first read
            pubsub = candidate
        while keys:
            jobs = await queue.jobs(keys)
            if on_retry is not None:
                _tell_retries(keys, jobs, told, on_retry)
            pending = {
                queue.job_id(key)
                for key, job in zip(keys, jobs)
                if job is not None and job.status not in TERMINAL_STATUSES
            }
            keys = [key for key in keys if queue.job_id(key) in pending]
            next_read = time.monotonic() + WAIT_POLL_S
            while pending:
                now = time.monotonic()
                if deadline is not None and now > deadline:
                    raise TimeoutError
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
                elif channel in pending and on_retry is not None and data.lower() == Status.QUEUED:
                    break  # queued again: an attempt failed, read its record now
            keys = [key for key in keys if queue.job_id(key) in pending]
            # Out of the inner loop: every job reported finished (done), or time for a re-read.
    finally:
        if candidate is not None:
            with contextlib.suppress(Exception):
                await candidate.aclose()
    return await queue.jobs(every_key)


def _tell_retries(
    keys: list[str], jobs: list[Job | None], told: dict[str, int], on_retry: t.Callable[[Job], None]
) -> None:
    for key, job in zip(keys, jobs):
        if (
            job is not None
            and job.status == Status.QUEUED
            and job.attempts > told.get(key, 0)
            and job.meta.get("failure")
        ):
            told[key] = job.attempts
            on_retry(job)


async def pause(deps: CollectContext) -> None:
    await deps.cache.set_paused(True)
    await deps.cache.publish(Event(kind="queue"))


async def resume(deps: CollectContext) -> None:
    await deps.cache.set_paused(False)
    await deps.cache.publish(Event(kind="queue"))


async def stats(deps: CollectContext, *, cached: bool = False) -> QueueStats:
    """The counts, the run history's from SQL (and cached for queue_stats); with `cached`, from
    that cache when it holds them."""
    runs = await deps.cache.run_counts() if cached else None
    if runs is None:
        runs = await deps.repo.run_counts()
        await deps.cache.set_run_counts(runs)
    return await queue_stats(deps.lanes.scheduled, deps.lanes.manual, deps.cache, runs)


async def queue_stats(scheduled: FleetQueue, manual: FleetQueue, cache: Cache, runs: dict[str, int]) -> QueueStats:
    """The counts, from Redis and the run history's `runs` counts."""
    scheduled_counts = await scheduled.counts()
    manual_counts = await manual.counts()
    return QueueStats(
        waiting=scheduled_counts["queued"] + manual_counts["queued"],
        active=scheduled_counts["active"] + manual_counts["active"],
        delayed=await cache.count_retrying(),
        completed=runs["completed"],
        failed=runs["failed"],
        scheduled=scheduled_counts["incomplete"],  # one link per server with a live schedule
        paused=await cache.is_paused(),
        workers=await cache.workers(),
    )


async def clean(deps: CollectContext) -> CleanResult:
    """Remove finished runs and job records past their age or count limits; returns how many,
    completed and failed."""
    limits = deps.settings.queue
    removed = await deps.repo.clean_runs(
        limits.completed_max_age, limits.completed_keep, limits.failed_max_age, limits.failed_keep
    )
    await deps.cache.drop_run_counts()
    for queue in deps.lanes:
        records = await _clean_records(deps, queue)
        removed = CleanResult(completed=removed.completed + records.completed, failed=removed.failed + records.failed)
    await deps.cache.publish(Event(kind="queue"))
    return removed


async def _clean_records(deps: CollectContext, queue: FleetQueue) -> CleanResult:
    limits = deps.settings.queue
    finished = await queue.finished_jobs()
    completed = [job for job in finished if job.status == "complete"]
    failed = [job for job in finished if job.status != "complete"]
    doomed_completed = _past_limits(completed, limits.completed_max_age, limits.completed_keep)
    doomed_failed = _past_limits(failed, limits.failed_max_age, limits.failed_keep)
    # Counted as asked: a record that went meanwhile (another process cleaned) is not counted.
    gone_completed = await queue.delete_finished([job.key for job in doomed_completed])
    return CleanResult(completed=gone_completed, failed=await queue.delete_finished([job.key for job in doomed_failed]))


def _past_limits(jobs: list[Job], max_age: float, keep: int) -> list[Job]:
    cutoff_ms = (time.time() - max_age) * 1000
    newest_first = sorted(jobs, key=lambda job: job.completed, reverse=True)
    return [job for rank, job in enumerate(newest_first) if rank >= keep or job.completed < cutoff_ms]
