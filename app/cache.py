"""Redis, as fleettop uses it outside SAQ: the only module that knows key names.

Every key starts with `redis.prefix` (default "fleettop:"), so several fleets (or
test runs) can share one Redis:

  <prefix>metrics:latest:<server_id>  latest Sample as JSON (TTL cache.latest_ttl)
  <prefix>metrics:aggregated          FleetAggregate as JSON (TTL cache.aggregated_ttl)
  <prefix>runs:last:<server_id>       how the server's last finished run ended (TTL cache.latest_ttl)
  <prefix>runs:counts                 hash completed/failed: the run history's counts (SQL), kept up
                                      by each run that ends; a snapshot has "valid" (TTL cache.latest_ttl)
  <prefix>paused                      set while the queue is paused (every process checks it)
  <prefix>workers                     zset worker id -> heartbeat expiry (epoch s)
  <prefix>workers:info                hash worker id -> WorkerInfo JSON, as of its last heartbeat
  <prefix>ring                        zset worker id -> heartbeat expiry, of the scheduling workers
                                      only: the ring the servers are shared among (fleettop.affinity)
  <prefix>retrying                    zset SAQ job id -> end of its retry backoff (epoch s)
  <prefix>chore:<name>                set while one process does a periodic chore (clean)
  <prefix>servers                     the server list as last synced into the database: ids,
                                      names and enabled flags (no secrets, no addresses), with
                                      the fingerprint of the config it was synced from (TTL cache.latest_ttl)
  <prefix>audit                       list of audit entries (AuditRequest JSON) made where no
                                      database was open, for a process holding one to record;
                                      each signed with a key derived from the secret key
  <prefix>audit:dead                  list of the entries refused there (forged, malformed, or
                                      refused by the database), each with why (the newest 1,000)
  <prefix>events                      pub/sub channel of Event JSON: a server's run or sample
  <prefix>control                     pub/sub channel of Event JSON: the server list or the queue
                                      changed (what workers listen for; they skip the per-server stream)
  saq:<prefix>{scheduled,manual}:*    SAQ's own keys for the two queues
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field, ValidationError, field_validator
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from fleettop.config import Settings, servers_fingerprint
from fleettop.domain import AUDIT_ACTIONS, Event, FleetAggregate, RunOutcome, Sample, Server, WorkerInfo, actor

log = logging.getLogger("fleettop.cache")

Lane = Literal["scheduled", "manual"]


CONTROL_KINDS = frozenset({"servers", "queue"})  # published on the control channel


class ServerList(BaseModel):
    """The enabled and disabled servers as last synced into the database, and the
    fingerprint (config.servers_fingerprint) of the config they were synced from."""

    fingerprint: str
    servers: list[tuple[int, str, bool]]  # id, name, enabled

    @classmethod
    def of(cls, settings: Settings, servers: Iterable[Server]) -> ServerList:
        """The list of these servers (as the database lists them), synced from this config."""
        return cls(fingerprint=servers_fingerprint(settings), servers=[(s.id, s.name, s.enabled) for s in servers])


AUDIT_TEXT_MAX = 65536  # a target or detail: a collection of every server by name fits
AUDIT_FUTURE_S = 300  # clocks of two hosts differ: an entry dated this far ahead is still now
AUDIT_MAX_AGE = timedelta(hours=24)  # waiting longer (no process opened the database): dead-lettered, kept
AUDIT_DEAD_MAX = 1000


class AuditRequest(BaseModel):
    """An audit entry made by a process with no database open, recorded later by one with it.

    Redis is not trusted: the entry carries an HMAC of its fields, and who reads it checks
    that, the action and the time before recording it."""

    action: str = Field(max_length=64)
    target: str = Field(max_length=AUDIT_TEXT_MAX)
    detail: str = Field("", max_length=AUDIT_TEXT_MAX)
    actor: str = Field(max_length=255)
    at: AwareDatetime
    pid: int = 0  # of the process that made it
    mac: str = ""

    @field_validator("action")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in AUDIT_ACTIONS:
            raise ValueError("not an action fleettop records")
        return value

    @field_validator("target", "detail", "actor")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        return value.replace("\x00", "")  # PostgreSQL refuses it in text

    def digest(self, key: bytes) -> str:
        fields = [self.action, self.target, self.detail, self.actor, self.at.isoformat(), self.pid]
        return hmac.new(key, json.dumps(fields).encode(), hashlib.sha256).hexdigest()

    def refusal(self, key: bytes, now: datetime) -> str | None:
        """Why this entry must not be recorded, or None."""
        # As bytes: compare_digest raises TypeError on a str with non-ASCII characters.
        if not hmac.compare_digest(self.mac.encode(), self.digest(key).encode()):
            return "bad or missing signature (not made by a fleettop process with this secret key)"
        if not now - AUDIT_MAX_AGE <= self.at <= now + timedelta(seconds=AUDIT_FUTURE_S):
            return f"dated {self.at.isoformat()}, too far from now"
        return None


class Cache:
    def __init__(self, redis: Redis, settings: Settings):
        self.redis = redis
        self.settings = settings
        self.prefix = settings.redis.prefix
        self.paused_key = self.prefix + "paused"
        self.events_channel = self.prefix + "events"
        self.control_channel = self.prefix + "control"
        self._aggregate_key = self.prefix + "metrics:aggregated"
        self._workers_key = self.prefix + "workers"
        self._workers_info_key = self.prefix + "workers:info"
        self.ring_key = self.prefix + "ring"
        self._retrying_key = self.prefix + "retrying"
        self._servers_key = self.prefix + "servers"
        self._counts_key = self.prefix + "runs:counts"
        self._audit_key = self.prefix + "audit"
        self._dead_audit_key = self.prefix + "audit:dead"
        self._relay_key = b""

    # -- names SAQ uses (queues and job keys carry the prefix too) -----------------

    def queue_name(self, lane: Lane) -> str:
        return self.prefix + lane

    def job_key(self, lane: Lane, server_id: int) -> str:
        """The stable SAQ job key of a server in a lane. SAQ's abort keys are global
        (saq:abort:<key>), so the key carries the prefix to stay unique per fleet."""
        return f"{self.prefix}{lane}:{server_id}"

    def server_of_job_key(self, lane: Lane, job_key: str) -> int | None:
        head = f"{self.prefix}{lane}:"
        if job_key.startswith(head) and job_key[len(head) :].isdigit():
            return int(job_key[len(head) :])
        return None

    # -- latest metrics --------------------------------------------------------------

    def _latest_key(self, server_id: int) -> str:
        return f"{self.prefix}metrics:latest:{server_id}"

    async def record_collected(self, sample: Sample, duration_s: float | None = None) -> None:
        """After a successful collection (that took `duration_s`), in one round trip: the latest
        sample, the run's outcome (ok) and count, the aggregate dropped, and the "sample" event published."""
        ttl = self.settings.cache.latest_ttl
        outcome = RunOutcome(status="ok", duration_s=duration_s)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self._latest_key(sample.server_id), sample.model_dump_json(), ex=ttl)
            pipe.set(self._outcome_key(sample.server_id), outcome.model_dump_json(), ex=ttl)
            pipe.hincrby(self._counts_key, "completed", 1)
            pipe.delete(self._aggregate_key)
            pipe.publish(self.events_channel, Event(kind="sample", server_id=sample.server_id).model_dump_json())
            await pipe.execute()

    async def cached_latest(self, server_ids: list[int]) -> dict[int, Sample]:
        """Latest sample of each server that Redis holds (one MGET)."""
        if not server_ids:
            return {}
        found: dict[int, Sample] = {}
        for server_id, raw in zip(server_ids, await self.redis.mget([self._latest_key(i) for i in server_ids])):
            if raw is not None:
                try:
                    found[server_id] = Sample.model_validate_json(raw)
                except ValidationError:
                    pass  # written by another version: a miss
        return found

    async def latest(
        self, server_ids: list[int], load: Callable[[], Awaitable[dict[int, Sample]]]
    ) -> dict[int, Sample]:
        """Latest sample of each server: from Redis, the misses from `load` (SQL), which are cached."""
        found = await self.cached_latest(server_ids)
        missing = [i for i in server_ids if i not in found]
        if missing:
            loaded = await load()
            async with self.redis.pipeline(transaction=False) as pipe:
                for server_id in missing:
                    if server_id in loaded:
                        found[server_id] = loaded[server_id]
                        pipe.set(
                            self._latest_key(server_id),
                            loaded[server_id].model_dump_json(),
                            ex=self.settings.cache.latest_ttl,
                        )
                await pipe.execute()
        return found

    async def forget(self, server_id: int) -> None:
        """Drop everything cached about a server (it was removed)."""
        await self.redis.delete(self._latest_key(server_id), self._outcome_key(server_id))

    # -- how each server's last run ended --------------------------------------------

    def _outcome_key(self, server_id: int) -> str:
        return f"{self.prefix}runs:last:{server_id}"

    async def set_outcome(self, server_id: int, outcome: RunOutcome, *, final: bool = True) -> None:
        """An attempt just ended so (jobs.collect): its outcome, and a failed run counted when
        it was the last attempt (a retried one is not a failed run yet)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self._outcome_key(server_id), outcome.model_dump_json(), ex=self.settings.cache.latest_ttl)
            if outcome.status == "failed" and final:
                pipe.hincrby(self._counts_key, "failed", 1)
            await pipe.execute()

    async def outcomes(
        self, server_ids: list[int], load: Callable[[int], Awaitable[RunOutcome | None]]
    ) -> dict[int, RunOutcome]:
        """Last run outcome of each server: from Redis, the misses from `load` (SQL), cached."""
        if not server_ids:
            return {}
        found: dict[int, RunOutcome] = {}
        for server_id, raw in zip(server_ids, await self.redis.mget([self._outcome_key(i) for i in server_ids])):
            if raw is not None:
                with contextlib.suppress(ValidationError):
                    found[server_id] = RunOutcome.model_validate_json(raw)
        for server_id in server_ids:
            if server_id not in found and (loaded := await load(server_id)) is not None:
                found[server_id] = loaded
                await self.redis.set(
                    self._outcome_key(server_id), loaded.model_dump_json(), ex=self.settings.cache.latest_ttl
                )
        return found

    # -- the run history's counts (queue stats) -------------------------------------

    async def run_counts(self) -> dict[str, int] | None:
        """{"completed": n, "failed": n} as the run history has them, if a snapshot is cached.
        Runs failed outside a job's own end (lost, interrupted, swept as stale) drop it."""
        raw = await self.redis.hgetall(self._counts_key)
        if b"valid" not in raw:
            return None  # none, or only the increments of runs ended since it went
        return {"completed": int(raw.get(b"completed", 0)), "failed": int(raw.get(b"failed", 0))}

    async def set_run_counts(self, counts: dict[str, int]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._counts_key, mapping={"completed": counts["completed"], "failed": counts["failed"], "valid": 1}
            )
            pipe.expire(self._counts_key, self.settings.cache.latest_ttl)
            await pipe.execute()

    async def drop_run_counts(self) -> None:
        """Runs were deleted (clean, a server removed): the next reader counts them in SQL."""
        await self.redis.delete(self._counts_key)

    # -- fleet aggregate -------------------------------------------------------------

    async def aggregate(self, compute: Callable[[], Awaitable[FleetAggregate]]) -> FleetAggregate:
        raw = await self.redis.get(self._aggregate_key)
        if raw is not None:
            try:
                return FleetAggregate.model_validate_json(raw)
            except ValidationError:
                pass
        value = await compute()
        await self.redis.set(self._aggregate_key, value.model_dump_json(), ex=self.settings.cache.aggregated_ttl)
        return value

    async def clear(self) -> int:
        """Delete every cached figure, run outcome, run count and the server list of this
        prefix (all rebuilt from SQL when next needed); returns how many keys went."""
        removed = await self.redis.delete(self._servers_key, self._counts_key)
        for pattern in ("metrics:*", "runs:last:*"):
            batch: list[bytes] = []
            async for key in self.redis.scan_iter(match=self.prefix + pattern, count=500):
                batch.append(key)
                if len(batch) >= 500:
                    removed += await self.redis.delete(*batch)
                    batch = []
            if batch:
                removed += await self.redis.delete(*batch)
        return removed

    # -- pause flag ------------------------------------------------------------------

    async def set_paused(self, paused: bool) -> None:
        if paused:
            await self.redis.set(self.paused_key, str(time.time()))
        else:
            await self.redis.delete(self.paused_key)

    async def is_paused(self) -> bool:
        return bool(await self.redis.exists(self.paused_key))

    # -- chores one process of the fleet does --------------------------------------

    async def claim(self, chore: str, seconds: int) -> bool:
        """True for the one process that claims `chore` in this window of `seconds`."""
        return bool(await self.redis.set(f"{self.prefix}chore:{chore}", "1", nx=True, ex=seconds))

    # -- worker heartbeats -----------------------------------------------------------

    async def beat(self, info: WorkerInfo, ttl: float) -> list[str]:
        """The worker's mark (and, for a scheduling one, its place in the ring) for `ttl`
        seconds; returns the ring's live members."""
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._workers_key, {info.id: now + ttl})
            pipe.zremrangebyscore(self._workers_key, "-inf", now)
            pipe.hset(self._workers_info_key, info.id, info.model_dump_json())
            if info.scheduling:
                pipe.zadd(self.ring_key, {info.id: now + ttl})
            pipe.zremrangebyscore(self.ring_key, "-inf", now)
            pipe.zrange(self.ring_key, 0, -1)
            replies = await pipe.execute()
        return [member.decode() for member in replies[-1]]

    async def drop_worker(self, worker_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._workers_key, worker_id).zrem(self.ring_key, worker_id)
            await pipe.hdel(self._workers_info_key, worker_id).execute()

    async def workers_alive(self) -> int:
        return await self.redis.zcount(self._workers_key, f"({time.time()}", "+inf")

    async def ring(self) -> list[str]:
        """The live scheduling workers, the servers' owners (fleettop.affinity)."""
        return [member.decode() for member in await self.redis.zrangebyscore(self.ring_key, f"({time.time()}", "+inf")]

    async def workers(self) -> list[WorkerInfo]:
        """The live workers, as their last heartbeats described them (the records of workers
        gone without a word are dropped here)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(self._workers_key, f"({time.time()}", "+inf")
            pipe.hgetall(self._workers_info_key)
            alive, records = await pipe.execute()
        alive_ids = {member.decode() for member in alive}
        gone = [worker_id for worker_id in records if worker_id.decode() not in alive_ids]
        if gone:
            await self.redis.hdel(self._workers_info_key, *gone)
        workers = []
        for worker_id, raw in records.items():
            if worker_id.decode() in alive_ids:
                with contextlib.suppress(ValidationError):
                    workers.append(WorkerInfo.model_validate_json(raw))
        return sorted(workers, key=lambda worker: worker.id)

    # -- jobs waiting out a retry backoff (the "delayed" figure) --------------------

    async def mark_retrying(self, job_id: str, until: float) -> None:
        await self.redis.zadd(self._retrying_key, {job_id: until})

    async def unmark_retrying(self, job_id: str) -> None:
        await self.redis.zrem(self._retrying_key, job_id)

    async def count_retrying(self) -> int:
        now = time.time()
        await self.redis.zremrangebyscore(self._retrying_key, "-inf", now)
        return await self.redis.zcard(self._retrying_key)

    # -- events ----------------------------------------------------------------------

    async def publish(self, event: Event) -> None:
        """Best effort: a lost repaint is better than a failed collection."""
        try:
            channel = self.control_channel if event.kind in CONTROL_KINDS else self.events_channel
            await self.redis.publish(channel, event.model_dump_json())
        except (RedisError, OSError) as exc:
            log.warning("cannot publish event %s: %s", event.kind, exc)

    async def announce_servers_changed(self) -> None:
        """Running workers reconcile their schedules and dashboards reload their lists; the
        cached server list (whoever changed the servers may store it again) and run counts
        (a removed server's runs went with it) are dropped."""
        await self.redis.delete(self._aggregate_key, self._servers_key, self._counts_key)
        await self.publish(Event(kind="servers"))

    # -- the server list, for commands that need no database -----------------------

    async def set_server_list(self, servers: ServerList) -> None:
        await self.redis.set(self._servers_key, servers.model_dump_json(), ex=self.settings.cache.latest_ttl)

    async def server_list(self, fingerprint: str) -> ServerList | None:
        """The cached server list if it was synced from a config with this fingerprint."""
        raw = await self.redis.get(self._servers_key)
        if raw is None:
            return None
        try:
            found = ServerList.model_validate_json(raw)
        except ValidationError:
            return None
        return found if found.fingerprint == fingerprint else None

    async def drop_stale_server_list(self, current: ServerList) -> bool:
        """Drop the cached server list if it came from this config (same fingerprint) but
        names other servers than `current`, as just read from the database: a change whose
        announcement could not reach Redis. Only ever drops (a list read a moment ago may be
        stale itself); the next command that misses it stores a fresh one. True if dropped."""
        cached = await self.server_list(current.fingerprint)
        if cached is None or cached.servers == current.servers:
            return False
        await self.redis.delete(self._servers_key)
        return True

    # -- audit entries waiting for a database ----------------------------------------

    def relay_key(self) -> bytes:
        """The key audit entries relayed here are signed with (fleettop.secrets.SecretBox.relay_key)."""
        if not self._relay_key:
            from fleettop.secrets import SecretBox  # cryptography: only for commands that relay or record

            self._relay_key = SecretBox(self.settings.data_dir).relay_key()
        return self._relay_key

    def request_audit(self, pipe: Pipeline, action: str, target: str, detail: str = "") -> None:
        """Queue a signed audit entry (on a pipeline the caller executes) for take_audit()."""
        entry = AuditRequest(
            action=action, target=target, detail=detail, actor=actor(), at=datetime.now(timezone.utc), pid=os.getpid()
        )
        entry.mac = entry.digest(self.relay_key())
        pipe.rpush(self._audit_key, entry.model_dump_json())

    async def take_audit(self, limit: int = 100) -> list[AuditRequest]:
        """Up to `limit` waiting audit entries, oldest first, taken off the list (put_back()
        them if they cannot be recorded). An entry that is malformed, unsigned, badly
        signed or dated too far from now goes to the dead-letter list instead."""
        key = self.relay_key()  # before taking: without it, the entries stay where they are
        raw = await self.redis.lpop(self._audit_key, limit) or []
        entries = []
        now = datetime.now(timezone.utc)
        for item in raw:
            try:
                entry = AuditRequest.model_validate_json(item)
            except ValidationError as exc:
                await self.dead_letter(item, f"malformed: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}")
                continue
            try:
                refusal = entry.refusal(key, now)
            except Exception as exc:  # whatever a forged entry does, the others are not lost with it
                refusal = f"cannot be checked: {type(exc).__name__}"
            if refusal is not None:
                await self.dead_letter(item, refusal)
                continue
            entries.append(entry)
        return entries

    async def put_back(self, entries: list[AuditRequest]) -> None:
        if entries:
            await self.redis.lpush(self._audit_key, *(entry.model_dump_json() for entry in reversed(entries)))

    async def dead_letter(self, entry: bytes | str | AuditRequest, reason: str) -> None:
        """Keep an audit entry that will not be recorded, with why, for a human to look at."""
        raw = entry.model_dump_json() if isinstance(entry, AuditRequest) else entry
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        log.warning("audit entry relayed through Redis refused (%s): kept in %s", reason, self._dead_audit_key)
        record = json.dumps(
            {"reason": reason, "refused_at": datetime.now(timezone.utc).isoformat(), "entry": text[:AUDIT_TEXT_MAX]}
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.rpush(self._dead_audit_key, record)
            pipe.ltrim(self._dead_audit_key, -AUDIT_DEAD_MAX, -1)
            await pipe.execute()

    async def events(
        self, on_subscribed: Callable[[], None] | None = None, *, control_only: bool = False
    ) -> AsyncIterator[Event]:
        """Events from every process on this Redis, until cancelled; with `control_only`, only
        the CONTROL_KINDS (a worker has no use for a message per collection). Reconnects after
        an outage; `on_subscribed` runs after each (re)subscription, as events published
        before it are lost. An "interrupted" event (never published) says the stream broke:
        Redis is away, and whatever it announces until it is back goes unheard."""
        channels = [self.control_channel] if control_only else [self.events_channel, self.control_channel]
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(*channels)
                if on_subscribed is not None:
                    on_subscribed()
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        yield Event.model_validate_json(message["data"])
                    except ValidationError:
                        continue
            except (RedisError, OSError) as exc:
                log.warning("event stream interrupted: %s; reconnecting", exc)
                yield Event(kind="interrupted")
                await asyncio.sleep(1)
            finally:
                await pubsub.aclose()


async def announce_servers_changed(settings: Settings) -> None:
    """Tell the workers and dashboards on this Redis, if any is running, that the
    server list changed (a command run beside them: `fleettop servers add`)."""
    from fleettop.redis_server import running_target

    target = await running_target(settings)
    if target is None:
        return  # no Redis running, so no worker or dashboard to tell
    client = target.client(max_connections=2)
    try:
        await Cache(client, settings).announce_servers_changed()
    except (RedisError, OSError) as exc:
        log.warning("cannot tell running workers about the change: %s", exc)
    finally:
        await client.aclose()
