"""Queue control every process agrees on: collect now, pause, resume, clean, stats.

Nothing here reads a worker's memory: counts come from Redis (the two queues, the
retry-backoff set, the pause flag) and from the run history in SQL.
"""

from __future__ import annotations

import asyncio
import time

from saq.job import TERMINAL_STATUSES, Job

from app.cache import Event
from app.domain import QueueStats
from app.queue.jobs import CollectContext, enqueue_manual
from app.queue.worker import FleetQueue

WAIT_POLL_S = 0.2


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
    """Until each server's manual job has finished (or its record is gone)."""
    keys = [deps.cache.job_key("manual", server_id) for server_id in server_ids]
    deadline = None if timeout is None else time.monotonic() + timeout
    while keys:
        jobs = await deps.lanes.manual.jobs(keys)
        keys = [key for key, job in zip(keys, jobs) if job is not None and job.status not in TERMINAL_STATUSES]
        if not keys:
            return
        if deadline is not None and time.monotonic() > deadline:
            raise asyncio.TimeoutError
        await asyncio.sleep(WAIT_POLL_S)


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
