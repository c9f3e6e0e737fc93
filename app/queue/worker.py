"""SAQ's Redis queue with what fleettop needs on top: a shared pause, a polite
dequeue, and atomic link surgery for the schedule; and the Worker built on it.

Pause: SAQ's Redis backend has none. Dequeue is a Lua script that moves a job
from queued to active only while the pause flag is absent, so once `pause()` has
returned no process starts a job; due jobs still move to `queued` and keep their
place. It polls (no BLMOVE: a blocked BLMOVE would take a job after a pause), but
one slot at a time per process, so an idle worker costs ~5 commands/s per queue.
The same script marks the job active, closing the window in which SAQ's sweep
takes a just-dequeued job for a lost one and runs it a second time.

Round trips per job (SAQ's own dequeue, update and finish take six): the dequeue
script returns the records themselves, and takes a job for every slot already
waiting to dequeue as well (up to half the queue); it counts the attempt and names the worker as SAQ's
update to 'active' would, so that update is not sent; SAQ's finish and its status
message go in one pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import typing as t

from redis.asyncio import Redis
from redis.exceptions import RedisError
from saq import Worker
from saq.job import TERMINAL_STATUSES, Job, Status
from saq.queue.base import Queue
from saq.queue.redis import RedisQueue
from saq.utils import now

from fleettop.cache import Cache
from fleettop.timing import scaled

log = logging.getLogger("fleettop.queue")

DEQUEUE_POLL_S = 0.2
AFFINITY_SCAN = 256  # queued jobs a ring member looks through for its own
SCHEDULE_TICK_S = 0.25  # due jobs (retries, schedule links) start at most this late
OUTAGE_RETRY_S = scaled(1.0)  # a dequeue's next try while Redis is away
SWEEP_ABORT_WAIT_S = 1.0

# Takes up to ARGV[2] jobs. With scheduling workers alive (the ring, KEYS[4]), only those of
# this worker's own servers (fleettop.affinity: the member of highest sha1("<member>/<server
# id>"), the server id being the job id's last field), looked for among the first ARGV[6]
# queued, so each server is collected by one worker and holds one connection; a process
# outside the ring (ARGV[4] empty: `collect --wait` with no worker) then takes none. With
# no ring, no more than half of those queued (rounded up), so that other processes polling
# meanwhile get their share.
# Marks each record active in the same step: SAQ's sweep aborts any job in the active list
# whose record is not, and would otherwise race every fresh dequeue (issue 277). Stores what
# SAQ's update to 'active' would (the attempt counted, the worker's id) and returns the
# records with the attempt not yet counted, as SAQ's Worker counts it again in memory.
_DEQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {} end
local ring = redis.call('ZRANGEBYSCORE', KEYS[4], '(' .. ARGV[5], '+inf')
local me = ARGV[4]
local ids = {}
if #ring == 0 or (#ring == 1 and ring[1] == me) then
  local want = tonumber(ARGV[2])
  if #ring == 0 then want = math.min(want, math.ceil(redis.call('LLEN', KEYS[2]) / 2)) end
  for _ = 1, want do
    local id = redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT')
    if not id then break end
    table.insert(ids, id)
  end
else
  local mine = false
  for _, member in ipairs(ring) do if member == me then mine = true end end
  if not mine then return {} end
  for _, id in ipairs(redis.call('LRANGE', KEYS[2], 0, tonumber(ARGV[6]) - 1)) do
    local server = string.match(id, ':(%d+)$')
    local owner = me
    if server then
      local best = ''
      for _, member in ipairs(ring) do
        local weight = redis.sha1hex(member .. '/' .. server)
        if weight > best then best, owner = weight, member end
      end
    end
    if owner == me then
      redis.call('LREM', KEYS[2], 1, id)
      redis.call('RPUSH', KEYS[3], id)
      table.insert(ids, id)
      if #ids >= tonumber(ARGV[2]) then break end
    end
  end
end
local taken = {}
for _, id in ipairs(ids) do
  local raw = redis.call('GET', id)
  if raw then
    local job = cjson.decode(raw)
    local attempts = job['attempts'] or 0
    job['status'] = 'active'
    job['started'] = tonumber(ARGV[1])
    job['touched'] = tonumber(ARGV[1])
    job['attempts'] = attempts + 1
    job['worker_id'] = ARGV[3]
    redis.call('SET', id, cjson.encode(job))
    job['attempts'] = attempts
    table.insert(taken, cjson.encode(job))
  end
end
return taken
"""

# The active list's job ids, once per `lock` seconds across every process (SAQ's sweep lock).
_SWEEP_IDS = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {} end
redis.call('SETEX', KEYS[1], ARGV[1], 1)
return redis.call('LRANGE', KEYS[2], 0, -1)
"""

# SAQ's schedule script, with a lock in milliseconds so the tick can be under a second.
_SCHEDULE = """
if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('SET', KEYS[1], 1, 'PX', ARGV[1])
    local jobs = redis.call('ZRANGEBYSCORE', KEYS[2], 1, ARGV[2])
    for _, v in ipairs(jobs) do
        redis.call('ZADD', KEYS[2], 0, v)
        redis.call('RPUSH', KEYS[3], v)
    end
    return jobs
end
"""

# Move a waiting (not queued, not active) job to another time. Returns 1 if moved.
_RESCHEDULE = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if redis.call('LPOS', KEYS[2], ARGV[1]) or redis.call('LPOS', KEYS[3], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"""

# Take a job off the queue unless a worker is running it. Returns 1 if withdrawn.
_WITHDRAW = """
if redis.call('LPOS', KEYS[3], ARGV[1]) then return 0 end
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('DEL', ARGV[1])
return removed
"""

_DELETE_FINISHED = """
local deleted = 0
for _, id in ipairs(ARGV) do
  if not redis.call('ZSCORE', KEYS[1], id) then deleted = deleted + redis.call('DEL', id) end
end
return deleted
"""


class FleetQueue(RedisQueue):
    def __init__(self, redis: Redis, name: str, *, paused_key: str, ring_key: str):
        super().__init__(redis, name=name)
        self.paused_key = paused_key
        self.ring_key = ring_key
        self.ring_member = ""  # this process's place in the ring ("": not a member)
        self._dequeue_lock = asyncio.Lock()
        self._dequeue_script = redis.register_script(_DEQUEUE)
        self._due_script = redis.register_script(_SCHEDULE)
        self._reschedule_script = redis.register_script(_RESCHEDULE)
        self._withdraw_script = redis.register_script(_WITHDRAW)
        self._delete_finished_script = redis.register_script(_DELETE_FINISHED)
        self._sweep_ids_script = redis.register_script(_SWEEP_IDS)
        self._closing = False
        self._outage = False
        self.worker_id = ""  # the SAQ Worker's id, stored in the records it takes
        self._waiting = 0  # slots waiting for their turn to dequeue
        self._taken: list[Job] = []  # taken for slots that were waiting, not handed out yet
        self._marked_active: set[str] = set()  # job ids whose record the dequeue marked active
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Jobs were queued (a "queue" event): look now rather than at the next poll."""
        self._wake.set()

    def stop_dequeuing(self) -> None:
        """Take no more jobs (shutdown): slots waiting to dequeue come back empty, the one
        waiting out its poll included (so a stop does not wait for the poll)."""
        self._closing = True
        self._wake.set()

    async def dequeue(self, timeout: float = 0.0, poll_interval: float = 0.0) -> Job | None:
        self._waiting += 1
        try:
            await self._dequeue_lock.acquire()
        finally:
            self._waiting -= 1
        try:
            if self._taken:  # already active in Redis: run it, closing or not
                return self._taken.pop(0)
            if self._closing:
                return None
            try:
                raws = await self._dequeue_script(
                    keys=[self.paused_key, self._queued, self._active, self.ring_key],
                    args=[now(), 1 + self._waiting, self.worker_id, self.ring_member, time.time(), AFFINITY_SCAN],
                )
            except (RedisError, OSError) as exc:
                # SAQ would retry at once in a hot loop: say it once, then wait.
                if not self._outage:
                    log.error("redis unavailable (queue %s): %s; retrying", self.name, exc)
                    self._outage = True
                await asyncio.sleep(OUTAGE_RETRY_S)
                return None
            if self._outage:
                log.warning("redis is back (queue %s)", self.name)
                self._outage = False
            jobs = [job for job in map(self.deserialize, raws) if job is not None]
            if not jobs:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(DEQUEUE_POLL_S):
                        await self._wake.wait()
                self._wake.clear()
                return None
            self._marked_active.update(job.id for job in jobs)
            self._taken.extend(jobs[1:])
            return jobs[0]
        finally:
            self._dequeue_lock.release()

    async def _update(self, job: Job, status: Status | None = None, **kwargs: t.Any) -> None:
        if status == Status.ACTIVE and job.id in self._marked_active:
            self._marked_active.discard(job.id)
            return  # the dequeue stored all of it; nothing in fleettop waits for the 'active' message
        await super()._update(job, status, **kwargs)

    async def _finish(self, job: Job, status: Status, *, result: t.Any = None, error: str | None = None) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrem(self._active, 1, job.id).zrem(self._incomplete, job.id)
            if job.ttl > 0:
                pipe.set(job.id, self.serialize(job), ex=job.ttl)
            elif job.ttl == 0:
                pipe.set(job.id, self.serialize(job))
            else:
                pipe.delete(job.id)
            await pipe.publish(job.id, job.status).execute()

    async def schedule(self, lock: float = SCHEDULE_TICK_S) -> list[str]:
        """Move jobs whose time has come to the queue; at most once per `lock` seconds
        across all processes (SAQ's own lock is whole seconds)."""
        due = await self._due_script(
            keys=[self._schedule, self._incomplete, self._queued], args=[max(1, int(lock * 1000)), time.time()]
        )
        return [job_id.decode() for job_id in due or []]

    async def sweep(self, lock: float = 60, abort: float = SWEEP_ABORT_WAIT_S) -> list[str]:
        """Re-queue (or fail) the jobs of the active list whose worker is gone: SAQ's sweep, with
        each job judged on its record as it is when its turn comes. SAQ judges them all on one
        snapshot while it waits for each swept one in turn, so a job taken or finished just as
        the snapshot was read looked stuck seconds later, was aborted over its result and run
        a second time. It waits `abort` seconds (at most SWEEP_ABORT_WAIT_S: a dead worker
        never confirms) per swept job; its lock is whole seconds, the worker's sweep period."""
        ids = await self._sweep_ids_script(keys=[self._sweep, self._active], args=[max(1, math.ceil(lock))])
        swept = []
        for job_id in ids:
            async with self.redis.pipeline(transaction=True) as pipe:
                active, raw = await pipe.lpos(self._active, job_id).get(job_id).execute()
            if active is None:
                continue  # finished (or swept by another process) since the snapshot
            job = self.deserialize(raw)
            if job is None:
                swept.append(job_id)
                async with self.redis.pipeline(transaction=True) as pipe:
                    await pipe.lrem(self._active, 0, job_id).zrem(self._incomplete, job_id).execute()
                log.info("swept the missing job %s", job_id.decode())
                continue
            if job.status == Status.ACTIVE and not job.stuck:
                continue
            swept.append(job_id)
            log.info("sweeping %s (its worker stopped beating)", job.key)
            await self.abort(job, error=self.swept_error_message)
            try:
                await job.refresh(min(abort, SWEEP_ABORT_WAIT_S))
            except TimeoutError:
                pass  # no worker confirmed the abort: it is gone
            if job.retryable:
                await self.retry(job, error=self.swept_error_message)
            else:
                await self.finish(job, Status.ABORTED, error=self.swept_error_message)
        return [job_id.decode() for job_id in swept]

    # SAQ's Redis listen() runs a pub/sub reader that spins when Redis is gone; only the
    # sweep (waiting a second for an abort) and callers polling anyway use it here.
    listen = Queue.listen

    async def reschedule(self, job_key: str, when: float) -> bool:
        """Move a job waiting for its time to `when` (epoch s); False if queued, running or gone."""
        moved = await self._reschedule_script(
            keys=[self._incomplete, self._queued, self._active], args=[self.job_id(job_key), when]
        )
        return bool(moved)

    async def withdraw(self, job_key: str) -> bool:
        """Remove a job that is waiting or queued; a running one is left to finish."""
        removed = await self._withdraw_script(
            keys=[self._incomplete, self._queued, self._active], args=[self.job_id(job_key)]
        )
        return bool(removed)

    async def waiting_links(self) -> dict[str, float]:
        """Job key -> the time it is due, for every job not yet finished (queued and active included)."""
        entries = await self.redis.zrange(self._incomplete, 0, -1, withscores=True)
        return {self.job_key_from_id(job_id.decode()): score for job_id, score in entries}

    async def scores(self, job_keys: list[str]) -> list[float | None]:
        if not job_keys:
            return []
        return await self.redis.zmscore(self._incomplete, [self.job_id(key) for key in job_keys])

    async def counts(self) -> dict[str, int]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.llen(self._queued)
            pipe.llen(self._active)
            pipe.zcard(self._incomplete)
            queued, active, incomplete = await pipe.execute()
        return {"queued": queued, "active": active, "incomplete": incomplete}

    async def finished_jobs(self) -> list[Job]:
        """Every finished job record still stored for this queue."""
        return [job async for job in self.iter_jobs(statuses=list(TERMINAL_STATUSES))]

    async def delete_finished(self, job_keys: list[str]) -> int:
        """Delete finished job records; a key enqueued again meanwhile is left alone."""
        if not job_keys:
            return 0
        return await self._delete_finished_script(keys=[self._incomplete], args=[self.job_id(key) for key in job_keys])


def build_worker(
    queue: FleetQueue,
    functions: list[t.Callable[..., t.Any]],
    *,
    concurrency: int,
    context: dict[str, t.Any],
    after_process: t.Callable[[dict[str, t.Any]], t.Awaitable[None]] | None,
    shutdown_grace: float,
    sweep_every: float,
) -> Worker:
    worker = Worker(
        queue,
        functions,
        concurrency=concurrency,
        after_process=after_process,
        timers={"schedule": SCHEDULE_TICK_S, "sweep": sweep_every, "worker_info": 10, "abort": 1},  # type: ignore[typeddict-item]
        shutdown_grace_period_s=shutdown_grace,  # type: ignore[arg-type]  (SAQ accepts a float)
    )
    worker.SIGNALS = []  # embedded: the host program owns SIGINT/SIGTERM
    queue.worker_id = str(worker.id)
    worker.context.update(context)
    return worker


class Lanes:
    """The two queues: `scheduled` (each server's schedule chain) and `manual`
    (collect-now), which has workers of its own so it never waits behind a backlog."""

    def __init__(self, new_client: t.Callable[[], Redis], cache: Cache):
        self.scheduled, self.manual = (
            FleetQueue(new_client(), cache.queue_name(lane), paused_key=cache.paused_key, ring_key=cache.ring_key)
            for lane in ("scheduled", "manual")
        )

    def __iter__(self) -> t.Iterator[FleetQueue]:
        return iter((self.scheduled, self.manual))

    async def connect(self) -> None:
        for queue in self:
            await queue.connect()

    async def close(self) -> None:
        for queue in self:
            try:
                await queue.disconnect()
            except (RedisError, OSError):
                pass
