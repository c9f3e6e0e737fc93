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
import resource
import socket
import uuid
from typing import Any

from redis.exceptions import RedisError
from saq import Worker

from fleettop.affinity import owned_by
from fleettop.domain import WorkerInfo
from fleettop.queue.contract import CollectContext
from fleettop.queue.jobs import SWEEP_EVERY_S, collect, rechain
from fleettop.queue.notifier import Notifier
from fleettop.queue.scheduler import Scheduler
from fleettop.queue.worker import build_worker
from fleettop.tasks import cancel_and_wait
from fleettop.timing import scaled

log = logging.getLogger("fleettop.runtime")

# A worker killed without a word leaves the ring when its mark expires: its servers move to
# the others within a reconcile period.
HEARTBEAT_EVERY_S = scaled(3.0)
HEARTBEAT_TTL_S = scaled(10.0)
FD_RESERVE = 128  # open files besides SSH connections: Redis, the database, logs, the API's sockets
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
        self._ring: list[str] = []  # the ring's members as of the last heartbeat
        self._owned: tuple[tuple[str, ...], frozenset[int], set[int]] | None = None  # (ring, enabled, owned)

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
        if self._scheduler is not None:  # a member of the ring: takes only the jobs of its own servers
            for worker in self._workers:
                worker.queue.ring_member = self.worker_id  # type: ignore[attr-defined]
        await self._fit_open_files()
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
        log.info("worker %s stopped", self.worker_id)

    async def _stop_workers(self) -> None:
        for worker in self._workers:
            worker.queue.stop_dequeuing()  # type: ignore[attr-defined]
        await cancel_and_wait(self._helpers)
        # Out of the ring at once: the others take this worker's servers while its jobs finish.
        with contextlib.suppress(RedisError, OSError):
            await self.deps.cache.drop_worker(self.worker_id)
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
        """A live worker's mark in Redis (`collect --wait`, health() and the queue's stats look
        for it), and its place in the ring; then the connections of servers it no longer
        collects are closed (one connection per server across the workers)."""
        host, pid = socket.gethostname(), os.getpid()
        while True:
            self._beat_now.clear()
            owned = self._owned_servers()
            info = WorkerInfo(
                id=self.worker_id,
                host=host,
                pid=pid,
                scheduling=self._scheduler is not None,
                servers=len(owned) if owned is not None else 0,
                connections=self.deps.prober.connections(),
            )
            with contextlib.suppress(RedisError, OSError):
                self._ring = await self.deps.cache.beat(info, HEARTBEAT_TTL_S)
            owned = self._owned_servers()
            if owned is not None:
                closed = self.deps.prober.release(owned.__contains__)
                if closed:
                    log.info("closed %d connections of servers another worker collects now (or gone)", closed)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEARTBEAT_EVERY_S):
                    await self._beat_now.wait()

    def _owned_servers(self) -> set[int] | None:
        """The enabled servers this worker collects, by the ring as last seen; None when that
        is not known (not a scheduling worker, not in the ring, no reconcile done yet)."""
        enabled = self._scheduler.enabled if self._scheduler is not None else None
        if enabled is None or self.worker_id not in self._ring:
            return None
        ring = tuple(self._ring)
        if self._owned is None or self._owned[:2] != (ring, enabled):
            self._owned = (ring, enabled, owned_by(self.worker_id, enabled, ring))
        return self._owned[2]

    async def _fit_open_files(self) -> None:
        """Raise the soft open-file limit to what the kept connections may need (up to the
        hard limit); short of it, keep fewer open, and say so once."""
        settings = self.deps.settings
        in_flight = 2 * settings.worker.concurrency  # connections of collections under way, both lanes
        limit = raise_open_files(FD_RESERVE + in_flight + settings.ssh.max_open_connections)
        room = max(limit - FD_RESERVE - in_flight, 0)
        if room >= settings.ssh.max_open_connections:
            return
        self.deps.prober.limit_connections(room)
        try:
            servers = await self.deps.repo.list_servers()
        except Exception:  # the database is away: the reconcile says so
            return
        kept = sum(
            1
            for server in servers
            if server.enabled and server.transport == "ssh" and server.interval <= settings.ssh.keep_open_max_interval
        )
        if kept > room:
            log.warning(
                "open files limited to %d (the hard limit): %d of %d servers keep their connection open, "
                "the others connect for each collection (raise `ulimit -n` to keep them all)",
                limit,
                room,
                kept,
            )


def raise_open_files(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE toward `wanted`, up to the hard limit; returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft
