"""Runs the SAQ workers and the scheduler inside whatever event loop is running
(the TUI's, the headless runner's, `collect --wait`'s), without signal handlers.

SAQ traps handled here: `Worker.start()` would install SIGINT/SIGTERM handlers
(build_worker clears SIGNALS); `Worker.stop()` waits for its upkeep loops too,
which sleep up to a sweep period, so they are cancelled first and the grace
period only ever waits for jobs in flight; jobs still running when it ends are
cancelled and put back on their queue (SAQ's retry on cancellation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from typing import Any

from redis.exceptions import RedisError
from saq import Worker

from fleettop.queue.contract import CollectContext
from fleettop.queue.jobs import SWEEP_EVERY_S, collect, rechain
from fleettop.queue.notifier import Notifier
from fleettop.queue.scheduler import Scheduler
from fleettop.queue.worker import build_worker
from fleettop.tasks import cancel_and_wait

log = logging.getLogger("fleettop.runtime")

HEARTBEAT_EVERY_S = 5.0
HEARTBEAT_TTL_S = 15.0
STOP_MARGIN_S = 10.0  # past the grace period: SAQ's cancellation deadline and the final writes


class Runtime:
    def __init__(self, deps: CollectContext, *, schedule: bool = True, notify: bool = True):
        """schedule=False: the manual queue only (`collect --wait` with no worker attached).
        notify: deliver the alerts' notifications (not a short-lived process: one killed
        after claiming them delays them by the claim's lease)."""
        self.deps = deps
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._workers: list[Worker] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._helpers: list[asyncio.Task[None]] = []
        self._scheduler = Scheduler(deps) if schedule else None
        self._notify = notify
        self._beat_now = asyncio.Event()

    async def start(self) -> None:
        settings = self.deps.settings
        # A URL apprise cannot use stops the start.
        notifier = Notifier(settings, self.deps.repo) if self._notify and settings.notify.urls else None
        common: dict[str, Any] = {
            "concurrency": settings.worker.concurrency,
            "context": {"collect": self.deps},
            "shutdown_grace": settings.worker.shutdown_grace,
            "sweep_every": SWEEP_EVERY_S,
        }
        self._workers.append(build_worker(self.deps.lanes.manual, [collect], after_process=None, **common))
        if self._scheduler is not None:
            self._workers.append(build_worker(self.deps.lanes.scheduled, [collect], after_process=rechain, **common))
            self._helpers.append(asyncio.create_task(self._scheduler.run(), name="fleettop-scheduler"))
        for worker in self._workers:
            self._tasks.append(asyncio.create_task(worker.start(), name=f"saq-worker-{worker.queue.name}"))
        self._helpers.append(asyncio.create_task(self._heartbeat(), name="fleettop-heartbeat"))
        if notifier is not None:
            self._helpers.append(asyncio.create_task(notifier.run(), name="fleettop-notifier"))
        self._helpers.append(asyncio.create_task(self._follow_control_events(), name="fleettop-control"))
        await asyncio.sleep(0)  # let each Worker.start() reach its wait before anyone may stop it
        log.info(
            "worker %s started (concurrency %d%s)",
            self.worker_id,
            settings.worker.concurrency,
            "" if self._scheduler else ", manual queue only",
        )

    async def stop(self) -> None:
        """Take no new job, let jobs in flight finish within worker.shutdown_grace, re-queue the rest."""
        limit = self.deps.settings.worker.shutdown_grace + STOP_MARGIN_S
        try:
            await asyncio.wait_for(self._stop_workers(), limit)
        except TimeoutError:
            # Something would not let go (a hung connection?): leave the rest to the
            # sweep of a live worker, which re-queues jobs that stop beating.
            log.error(
                "worker %s did not stop within %gs; its jobs go back to the queue by the sweep", self.worker_id, limit
            )
        with contextlib.suppress(RedisError, OSError):
            await self.deps.cache.drop_worker(self.worker_id)
        log.info("worker %s stopped", self.worker_id)

    async def _stop_workers(self) -> None:
        for worker in self._workers:
            worker.queue.stop_dequeuing()  # type: ignore[attr-defined]
        await cancel_and_wait(self._helpers)
        for worker in self._workers:
            worker.event.set()
            upkeep = [task for task in worker.tasks if task.get_name() != "process"]
            await cancel_and_wait(upkeep)
            worker.tasks.difference_update(upkeep)
        await asyncio.gather(*(worker.stop() for worker in self._workers), return_exceptions=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _follow_control_events(self) -> None:
        """One subscription for what a worker acts on: a collection queued by any process
        starts at once, not at the next dequeue poll; a changed server list is reconciled
        into the schedule. After each (re)subscription both happen anyway, as what was
        announced before it went unheard."""
        async for event in self.deps.cache.events(on_subscribed=self._catch_up, control_only=True):
            if event.kind == "queue":
                self._wake_queues()
            elif event.kind == "servers" and self._scheduler is not None:
                self._scheduler.wake()

    def _catch_up(self) -> None:
        self._beat_now.set()  # a Redis started again empty has no heartbeat: "no worker" meanwhile
        self._wake_queues()
        if self._scheduler is not None:
            self._scheduler.wake()

    def _wake_queues(self) -> None:
        for worker in self._workers:
            worker.queue.wake()  # type: ignore[attr-defined]

    async def _heartbeat(self) -> None:
        """A live worker's mark in Redis: `collect --wait` and health() look for it."""
        while True:
            self._beat_now.clear()
            with contextlib.suppress(RedisError, OSError):
                await self.deps.cache.beat(self.worker_id, HEARTBEAT_TTL_S)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEARTBEAT_EVERY_S):
                    await self._beat_now.wait()
