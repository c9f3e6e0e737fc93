"""The `collect` job: probe one server, store the sample and the run, cache it, tell everyone.

Idempotent: each delivery of a job carries a run key (its SAQ key plus the time
it was planned for), stable across retries and re-deliveries; a run key that
already finished ok is not collected again (SAQ may deliver a job twice when its
sweep races a worker, upstream issue 277).

Retries: SAQ counts `retries` as attempts in all; its own backoff is jittered, so
each failed attempt sets the job's `retry_delay` itself: retry_backoff, then
doubled (5 s, 10 s, ...), exact to the scheduler's quarter-second tick. Each attempt has
its run row; one that another attempt follows ends 'retried', so the run history counts one
failed run per failed collection. A manual collection (someone waiting for it) is not
retried when no retry can help (CollectError.permanent); a scheduled one keeps its retries.

A worker killed mid-job leaves the job `active`; the job touches itself every
HEARTBEAT_EVERY_S and declares `heartbeat` (fleettop.queue.contract.job_options), so the sweep of
any live worker re-queues it within seconds, however long the SSH timeouts are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import typing as t

from redis.exceptions import RedisError
from saq.job import TERMINAL_STATUSES, Job

from fleettop.cache import Event
from fleettop.domain import RunOutcome, Sample
from fleettop.probe import CollectError
from fleettop.queue.contract import DISABLED, GONE, OK, AttemptFailed, CollectContext, retry_delay, run_key
from fleettop.queue.control import enqueue_link
from fleettop.tasks import cancel_and_wait
from fleettop.text import first_line, typed_line
from fleettop.timing import scaled

log = logging.getLogger("fleettop.jobs")

HEARTBEAT_EVERY_S = scaled(2)
SWEEP_EVERY_S = scaled(5)
TRIGGERS = frozenset({"scheduled", "manual"})  # what fleettop itself enqueues ("retry" is recorded, never enqueued)


class RefusedJob(Exception):
    """A job whose fields fleettop never enqueues (written into Redis by someone else)."""


async def collect(ctx: dict[str, t.Any], *, server_id: int, trigger: str) -> dict[str, t.Any]:
    job: Job = ctx["job"]
    deps: CollectContext = ctx["collect"]
    if type(server_id) is not int or trigger not in TRIGGERS:  # Redis is not trusted: nothing is collected
        job.retries = job.attempts  # failed for good: a retry would be refused again
        raise RefusedJob(
            f"job refused: server_id {str(server_id)[:40]!r} and trigger {str(trigger)[:40]!r} are not what fleettop enqueues"
        )
    if job.attempts > 1:  # only a retry was marked (the "delayed" figure)
        with contextlib.suppress(RedisError, OSError):
            await deps.cache.unmark_retrying(job.id)
    key = run_key(job)
    attempt = job.attempts
    # One group-committed step: what the collection needs from SQL, and its run started.
    inputs = await deps.repo.begin_collection(
        server_id, key, trigger="retry" if attempt > 1 else trigger, attempt=attempt, skip_disabled=True
    )
    if inputs is None:
        return GONE
    server = inputs.server
    ctx["interval"] = server.interval if server.enabled else None  # read by rechain()
    if not server.enabled:  # whatever the trigger: a disabled server may be one suspected compromised
        return DISABLED
    if inputs.done or inputs.run is None:
        return {"status": "ok", "duplicate": True}
    run_id = inputs.run.id
    await deps.cache.publish(Event(kind="run", server_id=server_id))
    started = time.monotonic()
    heartbeat = asyncio.create_task(_heartbeat(job))
    try:
        secret = inputs.secret if server.has_secret else None
        result = await deps.prober.collect(server, inputs.counters, secret)
        # sample + run + the alerts it changes, group-committed
        ctx["alert_pending"] = await deps.repo.finish_collection(
            inputs.run, server_id, result.metrics, result.counters, server, inputs.open_alerts
        )
    except asyncio.CancelledError:
        _set_retry_delay(deps, job)
        status = "retried" if job.retryable else "failed"
        with contextlib.suppress(Exception):
            await asyncio.shield(deps.repo.finish_run(run_id, status, "interrupted (worker stopping or job timeout)"))
            await deps.cache.drop_run_counts()  # a failed run the cached counts did not see
        raise
    except Exception as exc:
        message = first_line(exc) if isinstance(exc, CollectError) else typed_line(exc)
        if trigger == "manual" and isinstance(exc, CollectError) and exc.permanent:
            job.retries = attempt  # someone is waiting for this answer, and no retry can change it
        # One collection is one run: an attempt another follows is 'retried', not a failed run.
        status = "retried" if job.retryable else "failed"
        job.meta["failure"] = message  # for `collect --wait`'s progress lines
        try:
            # failed for good: one more toward down (pending: collected again after alerts.recheck)
            ctx["alert_pending"] = await deps.repo.finish_run(run_id, status, message, server)
        except Exception:  # the database is away: close the run once it is back
            _finish_later(deps, run_id, status, message)
        if job.retryable:
            delay = _set_retry_delay(deps, job)
            with contextlib.suppress(RedisError, OSError):
                await deps.cache.mark_retrying(job.id, time.time() + delay)
        with contextlib.suppress(RedisError, OSError):
            await deps.cache.set_outcome(
                server_id,
                RunOutcome(status="failed", error=message, duration_s=time.monotonic() - started),
                final=status == "failed",
            )
        log.warning("collect %s attempt %d/%d failed: %s", server.name, attempt, job.retries, message)
        await deps.cache.publish(Event(kind="run", server_id=server_id))
        raise AttemptFailed(message) from None
    finally:
        await cancel_and_wait([heartbeat])

    # Validated already (Metrics, Counters): no second validation of every field.
    sample = Sample.model_construct(**dict(result.metrics), server_id=server_id, counters=result.counters)
    try:  # latest, outcome, aggregate dropped and the event: one round trip
        await deps.cache.record_collected(sample, time.monotonic() - started)
    except (RedisError, OSError) as exc:  # stored in SQL already; readers fall back to it
        log.warning("cannot cache the sample of %s: %s", server.name, exc)
        await deps.cache.publish(Event(kind="sample", server_id=server_id))
    log.info("collected %s in %.2fs (attempt %d)", server.name, time.monotonic() - started, attempt)
    return OK


FINISH_RETRY_EVERY_S = 2.0
FINISH_RETRY_FOR_S = 3600.0
_finishing: set[asyncio.Task[None]] = set()


def _finish_later(deps: CollectContext, run_id: int, status: str, message: str) -> None:
    """Record a failed run's end when the database answers again (a run must never stay
    'running'); while this process lives. Past that, the reconcile's stale-run sweep does."""

    async def retry() -> None:
        deadline = time.monotonic() + FINISH_RETRY_FOR_S
        while time.monotonic() < deadline:
            await asyncio.sleep(FINISH_RETRY_EVERY_S)
            try:
                await deps.repo.finish_run(run_id, status, message)
                return
            except Exception:
                continue

    task = asyncio.get_running_loop().create_task(retry(), name=f"fleettop-finish-run-{run_id}")
    _finishing.add(task)
    task.add_done_callback(_finishing.discard)


def _set_retry_delay(deps: CollectContext, job: Job) -> float:
    job.retry_delay = retry_delay(deps.settings, job.attempts)
    return job.retry_delay


async def _heartbeat(job: Job) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_EVERY_S)
        with contextlib.suppress(RedisError, OSError):
            await job.update()


async def rechain(ctx: dict[str, t.Any]) -> None:
    """After a scheduled job finished for good, enqueue the server's next link (same key)."""
    job: Job | None = ctx.get("job")
    interval = ctx.get("interval")
    if job is None or job.status not in TERMINAL_STATUSES or not interval:
        return  # retrying, or the server is gone or disabled; the reconcile repairs the rest
    deps: CollectContext = ctx["collect"]
    started = job.started / 1000 if job.started else time.time()
    planned = min(job.scheduled, started) if job.scheduled else started
    server_id = job.kwargs["server_id"] if job.kwargs else None
    if server_id is not None:
        due = next_due(planned, scaled(interval), time.time())
        if ctx.get("alert_pending"):  # confirm or clear it soon: `for` counts samples, not hours
            due = min(due, time.time() + scaled(deps.settings.alerts.recheck))
        try:
            await enqueue_link(deps, server_id, due)
        except (RedisError, OSError) as exc:
            log.warning("cannot schedule the next collection of server %s: %s (the reconcile will)", server_id, exc)


def next_due(planned: float, interval: float, now: float) -> float:
    """The first time on the grid planned + k*interval (k >= 1) that is in the future."""
    steps = max(1, math.floor((now - planned) / interval) + 1)
    return planned + steps * interval
