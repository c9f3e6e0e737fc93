"""FleetService: the one API the TUI and the CLI use (fleettop.wiring builds it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from fleettop.alerting import RESOLVED_SHOWN, AlertRecord, SilenceRecord
from fleettop.cache import Event, ServerList
from fleettop.config import ServerConfig, redact_url
from fleettop.domain import (
    CleanResult,
    CollectOutcome,
    FleetAggregate,
    Metrics,
    QueueStats,
    Run,
    RunOutcome,
    Server,
    actor,
    classify,
    secret_binding_changes,
)
from fleettop.errors import FleettopError, UnknownServer, UsageError
from fleettop.forecast import FIT_WINDOW_S, seconds_until_full
from fleettop.probe import CollectError
from fleettop.queue import contract, control
from fleettop.queue.contract import CollectContext
from fleettop.queue.notifier import send_test
from fleettop.queue.runtime import Runtime
from fleettop.redis_server import RedisTarget, RedisUnavailable
from fleettop.rollup import DAY_S, DEFAULT_POINTS, DISK_PREFIX, Series
from fleettop.secrets import SecretBox
from fleettop.servers import ServerAdmin
from fleettop.store.db import SQL_ERRORS, describe_error
from fleettop.tasks import cancel_and_wait
from fleettop.text import first_line
from fleettop.views import (
    Health,
    HistoryCharts,
    HostKeyCheck,
    ResolvedRoute,
    ScheduleEntry,
    ServerDetail,
    ServerView,
    WorkerState,
    status_of,
)

if TYPE_CHECKING:
    from saq.job import Job

log = logging.getLogger("fleettop.service")

RECENT_RUNS = 20
RECENT_ALERTS = 10  # on the detail screen
# The detail screen's charts, in this order; then each mount's disk %.
CHART_METRICS = ("cpu", "ram", "load1", "net_rx", "net_tx")
FORECAST_EVERY_S = 60.0  # the dashboard's disk-full marks are made again this often
HEALTH_TIMEOUT_S = 3.0  # a health check longer than this is an answer: "down"
AUDIT_EVERY_S = 1.0  # a worker records the audit entries attached commands left in Redis this often


# What Redis or the database being away (or refusing) raises: no bug, an outage to report.
OUTAGES: tuple[type[Exception], ...] = (RedisError, RedisUnavailable, *SQL_ERRORS, OSError, TimeoutError)


def describe_outage(exc: BaseException) -> str:
    """One line naming what is away and why, as the driver says it (no password: URLs redacted)."""
    if isinstance(exc, (RedisError, RedisUnavailable)):
        said = f"redis: {first_line(exc)}"
    elif isinstance(exc, SQL_ERRORS):
        said = f"database: {describe_error(exc)}"
    else:
        said = first_line(exc) or type(exc).__name__
    return redact_url(said)


def refuse_disabled(servers: list[Server]) -> None:
    """A UsageError naming the disabled ones among these servers: never collected, whatever asks."""
    disabled = [server.name for server in servers if not server.enabled]
    if disabled:
        names = ", ".join(disabled)
        raise UsageError(
            f"{names} {'is' if len(disabled) == 1 else 'are'} disabled: not collected "
            f"(enable with: fleettop servers edit NAME --enable)"
        )


class FleetService:
    OUTAGES = OUTAGES
    describe_outage = staticmethod(describe_outage)

    def __init__(self, deps: CollectContext, secrets: SecretBox, redis: RedisTarget, config_path: Path):
        self.context = deps  # what the jobs run with: repo, cache, prober, queues
        self.settings = deps.settings
        self.repo = deps.repo
        self.cache = deps.cache
        self._secrets = secrets
        self.admin = ServerAdmin(deps.repo, deps.settings, secrets, config_path)
        self.redis = redis
        self._runtime: Runtime | None = None
        self._auditor: asyncio.Task[None] | None = None
        self._forecasts: tuple[float, dict[int, dict[str, float]]] | None = None  # (when, by server)

    # -- workers ---------------------------------------------------------------------

    async def start_worker(self, *, schedule: bool = True, notify: bool | None = None) -> None:
        """Run the workers (and with schedule=True the scheduler) in this event loop; `notify`
        (default: as `schedule`, a long-running worker) delivers the alerts' notifications too."""
        if self._runtime is None:
            self._runtime = Runtime(self.context, schedule=schedule, notify=schedule if notify is None else notify)
            await self._runtime.start()
            self._auditor = asyncio.create_task(self._record_audit_requests(), name="fleettop-audit")

    async def stop_worker(self) -> None:
        if self._runtime is not None:
            runtime, self._runtime = self._runtime, None
            await runtime.stop()
        if self._auditor is not None:
            auditor, self._auditor = self._auditor, None
            await cancel_and_wait([auditor])
            with contextlib.suppress(Exception):  # the next process with the database records the rest
                await self.record_audit_requests()

    async def workers_alive(self) -> int:
        """Worker processes attached to this Redis (by their heartbeats)."""
        return await self.cache.workers_alive()

    # -- servers ---------------------------------------------------------------------

    async def list_servers(self) -> list[ServerView]:
        servers = await self.repo.list_servers()
        return await self._rows(servers)

    async def server_row(self, server_id: int) -> ServerView | None:
        server = await self.repo.get_server_by_id(server_id)
        return (await self._rows([server]))[0] if server else None

    async def server_rows(self, server_ids: Iterable[int]) -> dict[int, ServerView | None]:
        """server_row of each (None: no such server), with one Redis read for all of them."""
        servers = {server_id: await self.repo.get_server_by_id(server_id) for server_id in server_ids}
        rows = await self._rows([server for server in servers.values() if server is not None])
        found = {row.server.id: row for row in rows}
        return {server_id: found.get(server_id) for server_id in servers}

    async def server_detail(self, name: str, span: int = DAY_S, width: int = DEFAULT_POINTS) -> ServerDetail:
        """A server's row, recent runs, and its history over the last `span` seconds, at most
        `width` points a chart (the tier by the span: fleettop.rollup.plan_read)."""
        server = await self.admin.get(name)
        row = (await self._rows([server]))[0]
        now = datetime.now(timezone.utc)
        mounts = [disk.mount for disk in row.latest.disks] if row.latest else await self.repo.history_mounts(server.id)
        metrics = [*CHART_METRICS, *(DISK_PREFIX + mount for mount in mounts)]
        since = now - timedelta(seconds=span)
        runs, full_in, alerts = await asyncio.gather(
            self.repo.recent_runs(server.id, RECENT_RUNS),
            self.disk_forecasts([server.id]),
            self.repo.server_alerts(server.id, RECENT_ALERTS),
        )
        series = await asyncio.gather(
            *(self.repo.history_series(server.id, metric, since, now, max_points=width) for metric in metrics)
        )
        history = HistoryCharts(
            span=span, until=int(now.timestamp()), series=list(series), full_in=full_in.get(server.id, {})
        )
        return ServerDetail(row=row, history=history, runs=runs, alerts=alerts, route=await self.route(server))

    # -- alerts ------------------------------------------------------------------

    async def alerts(self, *, everything: bool = False) -> list[AlertRecord]:
        """Open alerts, firing first; `everything`: with those resolved in the last RESOLVED_SHOWN."""
        since = datetime.now(timezone.utc) - RESOLVED_SHOWN if everything else None
        return await self.repo.alerts(resolved_since=since)

    async def ack_alert(self, alert_id: int) -> AlertRecord:
        return await self.repo.ack_alert(alert_id, actor())

    async def silence(self, name: str, *, rule: str | None, duration_s: float, comment: str = "") -> SilenceRecord:
        until = datetime.now(timezone.utc) + timedelta(seconds=duration_s)
        return await self.repo.add_silence(name, rule, until, comment, actor())

    async def silences(self) -> list[SilenceRecord]:
        return await self.repo.silences()

    async def expire_silence(self, silence_id: int) -> SilenceRecord:
        return await self.repo.expire_silence(silence_id, actor())

    async def notify_test(self) -> list[tuple[str, str | None]]:
        """One test message to every notify URL: (the URL masked, None when sent or why not)."""
        results = await send_test(self.settings, actor())
        return [(target.shown, error) for target, error in results]

    async def disk_forecasts(self, server_ids: list[int] | None) -> dict[int, dict[str, float]]:
        """By server id (None: every server), each mount that fills up: the seconds until it
        is full, by a line through its hourly use of the last week (fleettop.forecast).
        Mounts not filling are absent."""
        now = int(time.time())
        hours = await self.repo.disk_hours(server_ids, now - FIT_WINDOW_S)
        forecasts: dict[int, dict[str, float]] = {}
        for server_id, mounts in hours.items():
            for mount, points in mounts.items():
                seconds = seconds_until_full(points, now)
                if seconds is not None:
                    forecasts.setdefault(server_id, {})[mount] = seconds
        return forecasts

    async def history(
        self, name: str, metrics: Sequence[str], since: datetime, until: datetime, step: int | None = None
    ) -> tuple[Server, list[Series]]:
        """A server's metrics over [since, until), each from the tier that range needs, at most
        DEFAULT_POINTS points or one every `step` seconds (as `fleettop history` reads them)."""
        server = await self.admin.get(name)
        return server, [
            await self.repo.history_series(server.id, metric, since, until, step=step) for metric in metrics
        ]

    async def route(self, server: Server) -> ResolvedRoute | None:
        """How an SSH server is reached (its ssh config alias and jump hosts resolved); None for
        a local one. A config or jump spec that cannot be used is the route's problem."""
        if server.transport == "local":
            return None
        try:
            return ResolvedRoute.model_validate(await self.context.prober.resolved(server))
        except CollectError as exc:
            return ResolvedRoute(problem=str(exc))

    async def resolve(self, names: list[str]) -> list[Server]:
        """The named servers, or a UsageError naming those that do not exist."""
        found = [await self.repo.get_server(name) for name in names]
        unknown = [name for name, server in zip(names, found) if server is None]
        if unknown:
            raise UnknownServer(*unknown)
        return [server for server in found if server is not None]

    async def enabled_servers(self, tag: str | None = None) -> list[Server]:
        """The servers to collect; `tag`: those carrying it."""
        return await self.repo.list_servers(enabled_only=True, tag=tag)

    async def add_server(self, cfg: ServerConfig, secret: str | None = None) -> Server:
        server = await self.admin.add(cfg, secret)
        await self._servers_changed()
        return server

    async def edit_server(self, name: str, cfg: ServerConfig, secret: str | None = None) -> Server:
        """Replace a server's settings; secret=None keeps the stored one."""
        server, _ = await self.admin.edit(name, cfg, secret)
        await self._servers_changed()
        return server

    async def remove_server(self, name: str) -> None:
        server, samples = await self.admin.check_removable(name)
        await self.admin.remove(server, samples)
        with contextlib.suppress(RedisError, OSError):
            await self.cache.forget(server.id)
            lanes = self.context.lanes
            await lanes.scheduled.withdraw(self.cache.job_key("scheduled", server.id))
            await lanes.manual.withdraw(self.cache.job_key("manual", server.id))
        await self._servers_changed()

    async def test_connection(self, cfg: ServerConfig, secret: str | None = None) -> Metrics:
        """Probe a server once with these settings, storing nothing. Raises CollectError.
        Without a typed secret, the server's stored one is used only for the host, port, user,
        transport and auth it was entered for: a form pointing elsewhere must type it again."""
        defaults = self.settings.defaults
        thresholds = cfg.thresholds.resolve(defaults.thresholds)
        existing = await self.repo.get_server(cfg.name)
        server = Server(
            id=existing.id if existing else 0,
            name=cfg.name,
            host=cfg.host,
            port=cfg.port,
            username=cfg.username,
            transport=cfg.transport,
            auth=cfg.auth,
            key_file=str(cfg.key_file) if cfg.key_file else None,
            interval=cfg.interval or defaults.interval_for(cfg.transport),
            thresholds=thresholds,
            tags=tuple(cfg.tags),
            jump=cfg.jump,
        )
        blob = None
        if secret:
            blob = self._secrets.seal(secret, server.id, server)
        elif cfg.auth != "agent" and existing is not None and existing.has_secret:
            if secret_binding_changes(existing, cfg):
                raise CollectError(
                    "auth_failed",
                    cfg.name,
                    f"the stored password is for {existing.username or '-'}@{existing.host}:{existing.port}; type it to test these settings",
                )
            blob = await self.repo.get_secret(existing.id)
        result = await self.context.prober.collect(server, None, blob, keep=False)
        return result.metrics

    async def check_host_key(self, name: str) -> HostKeyCheck:
        """Fetch the host key a server presents (without logging in) and compare it with the
        known_hosts files, as `fleettop trust` does. Raises CollectError when it cannot be had."""
        from fleettop import probe  # its SSH half loads asyncssh: only when a key is asked for

        server = await self._ssh_server(name)
        prober = self.context.prober
        fingerprint, key = await prober.host_key(server)
        host, port = await prober.address(server)  # an ssh config alias resolved: what known_hosts names
        return HostKeyCheck(
            server=server.name,
            where=probe.host_pattern(host, port),
            key=probe.describe_key(key),
            fingerprint=fingerprint,
            state=await prober.trusted_state(server, key),
            record_in=prober.own_known_hosts,
        )

    async def trust_host_key(self, name: str, fingerprint: str) -> Path:
        """Record the server's host key in data_dir/known_hosts, as `fleettop trust` does, if it
        is still the key with this fingerprint (the one the user was shown) and no other key is
        trusted for the host: a changed key is replaced only with the CLI, on purpose. Returns
        the file written."""
        from fleettop import probe

        server = await self._ssh_server(name)
        prober = self.context.prober
        presented, key = await prober.host_key(server)
        if presented != fingerprint:
            raise FleettopError(f"{server.name} now presents a different host key ({presented}): not trusted")
        state = await prober.trusted_state(server, key)
        if state == "changed":
            raise FleettopError(
                f"{server.name}: a DIFFERENT host key is trusted for this host; not replaced from the dashboard "
                f"(check why it changed, then run: fleettop trust {server.name} --replace)"
            )
        path = prober.own_known_hosts
        if state == "unknown":
            host, port = await prober.address(server)
            await asyncio.to_thread(probe.record_known_host, path, host, port, key)
            await self.repo.audit("trust", server.name, fingerprint)
        return path

    async def _ssh_server(self, name: str) -> Server:
        server = await self.admin.get(name)
        if server.transport == "local":
            raise UsageError(f"{server.name} uses the local transport: it has no host key")
        return server

    # -- queue -----------------------------------------------------------------------

    async def collect_now(self, names: list[str] | None = None) -> int:
        """Queue a collection of the named servers (None: every enabled one) on the manual
        queue, ahead of any backlog; returns how many were newly queued."""
        servers = await self.resolve(names) if names is not None else await self.repo.list_servers(enabled_only=True)
        return await self.collect_servers(servers, everything=names is None)

    async def collect_servers(self, servers: list[Server], *, everything: bool, who: str | None = None) -> int:
        """collect_now of servers already looked up (everything: all the enabled ones). `who`:
        the audit log's actor when not this process's user (an API token's name)."""
        refuse_disabled(servers)
        action = control.collect_audit([server.name for server in servers], everything=everything)
        await self.repo.audit(*action, who=who)
        return await control.collect_now(self.context, [server.id for server in servers])

    async def wait_collected(
        self, servers: list[Server], timeout: float | None = None, on_retry: Callable[[Job], None] | None = None
    ) -> None:
        """Until the manual collection of each server has finished (ok or failed for good);
        `on_retry` hears of each failed attempt that is retried (control.wait_manual)."""
        await control.wait_manual(
            self.context.lanes.manual, self.cache, [server.id for server in servers], timeout, on_retry
        )

    async def manual_outcomes(self, ids: list[int]) -> list[CollectOutcome]:
        """The result of each server's (by id) last manual collection (after wait_collected), in three reads whatever their number: the
        job records (one MGET), the last runs (one query), the latest samples (one query)."""
        if not ids:
            return []
        jobs = await self.context.lanes.manual.jobs([self.cache.job_key("manual", server_id) for server_id in ids])
        lasts = await self.repo.last_runs(ids)
        oks = [
            job.status == "complete" and isinstance(job.result, dict) and job.result.get("status") == "ok"
            if job is not None
            else lasts.get(server_id) is not None and lasts[server_id].status == "ok"
            for server_id, job in zip(ids, jobs)
        ]
        samples = await self.repo.latest_samples() if any(oks) else {}
        outcomes = []
        for server_id, job, ok in zip(ids, jobs, oks):
            last = lasts.get(server_id)
            if ok:
                outcomes.append(CollectOutcome(status="ok", sample=samples.get(server_id)))
            elif job is not None and job.result == contract.GONE:
                outcomes.append(CollectOutcome(status="failed", error="the server was removed before it was collected"))
            elif job is not None and job.result == contract.DISABLED:
                outcomes.append(
                    CollectOutcome(status="failed", error="the server was disabled before it was collected")
                )
            elif job is not None and job.status == "failed" and job.meta.get("failure"):
                # Its own last attempt's error: the server's last run may be a scheduled one since.
                outcomes.append(CollectOutcome(status="failed", error=str(job.meta["failure"])))
            elif last is not None and last.status in ("failed", "retried"):
                outcomes.append(CollectOutcome(status="failed", error=last.error))
            else:
                outcomes.append(
                    CollectOutcome(status="failed", error=f"collection {job.status.value if job else 'lost'}")
                )
        return outcomes

    async def pause(self, who: str | None = None) -> None:
        await control.pause(self.context)
        await self.repo.audit("queue.pause", "queue", who=who)

    async def resume(self, who: str | None = None) -> None:
        await control.resume(self.context)
        await self.repo.audit("queue.resume", "queue", who=who)

    async def is_paused(self) -> bool:
        return await self.cache.is_paused()

    async def clean(self, who: str | None = None) -> CleanResult:
        removed = await control.clean(self.context)
        await self.repo.audit("queue.clean", "queue", f"{removed.total} removed", who=who)
        return removed

    async def clear_cache(self) -> int:
        """Empty the cache (latest samples, aggregate, server list, run counts); returns the keys removed."""
        removed = await self.cache.clear()
        await self.repo.audit("cache.clear", "cache", f"{removed} keys")
        return removed

    async def stats(self, *, cached: bool = False) -> QueueStats:
        """cached: the run history's counts as Redis keeps them up (read from SQL only when
        they are not there), for a caller as frequent as a Prometheus scrape."""
        return await control.stats(self.context, cached=cached)

    async def aggregate(self) -> FleetAggregate:
        return await self.cache.aggregate(self.repo.aggregate)

    async def failed_runs(self, limit: int = 50) -> list[Run]:
        return await self.repo.failed_runs(limit)

    async def retry(self, run_id: int) -> int:
        """Collect the server of a failed run again, now; returns 1 if queued (0: already queued)."""
        run = await self.repo.get_run(run_id)
        if run is None:
            raise FleettopError(f"run {run_id} not found (cleaned, or its server removed)")
        server = await self.repo.get_server_by_id(run.server_id)
        refuse_disabled([server] if server else [])
        await self.repo.audit("collect.retry", run.server_name, f"run {run_id}")
        return await control.collect_now(self.context, [run.server_id])

    async def schedule(self) -> list[ScheduleEntry]:
        """Every enabled server's interval and next run, soonest first (not scheduled: last)."""
        servers = await self.repo.list_servers(enabled_only=True)
        next_runs = await self._next_runs(servers)
        entries = [
            ScheduleEntry(name=server.name, interval=server.interval, next_run_at=next_runs.get(server.id))
            for server in servers
        ]
        far = datetime.max.replace(tzinfo=timezone.utc)
        return sorted(entries, key=lambda entry: (entry.next_run_at or far, entry.name))

    async def health(self) -> Health:
        """Redis, the database and the workers, each answered within HEALTH_TIMEOUT_S: a frozen
        server (SIGSTOP, a partition without resets) is "down", not a call that never returns."""
        redis_ok = True
        worker: WorkerState = "none"
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_S):
                await self.cache.redis.ping()
                # This process's own worker counts before its heartbeat is in Redis (a Redis
                # started again is empty): the header says "running", not "no worker".
                if self._runtime is not None or await self.cache.workers_alive():
                    worker = "paused" if await self.cache.is_paused() else "running"
        except (RedisError, OSError, TimeoutError):
            redis_ok = False
            worker = "unknown"  # workers are known by their heartbeats in Redis
        return Health(redis=redis_ok, database=await self._database_answers(), worker=worker)

    async def events(self) -> AsyncIterator[Event]:
        async for event in self.cache.events():
            yield event

    # -- helpers ---------------------------------------------------------------------

    async def _servers_changed(self) -> None:
        """Tell every process on Redis that the servers changed. The change is committed already:
        with Redis away it is not undone, and each worker's reconcile (every 10 s) catches up."""
        try:
            await self.cache.announce_servers_changed()
            await self.cache_server_list()
        except (RedisError, OSError) as exc:
            log.warning("servers changed, not announced (Redis: %s); the workers' reconcile will catch up", exc)

    async def cache_server_list(self) -> None:
        """The server list in Redis, for commands attached to a worker (fleettop.cli.attached)."""
        await self.cache.set_server_list(ServerList.of(self.settings, await self.repo.list_servers()))

    async def record_audit_requests(self) -> int:
        """Record the audit entries that commands without a database (fleettop.cli.attached) left in
        Redis (take_audit checked them), each with its own actor and time, and which processes
        relayed it; returns how many. One the database refuses while it answers is dead-lettered."""
        entries = await self.cache.take_audit()
        recorded = 0
        for done, entry in enumerate(entries):
            relayed = f"relayed through Redis by pid {entry.pid}, recorded by {actor()} pid {os.getpid()}"
            try:
                if await self.repo.audit_recorded(entry.actor, entry.action, entry.at):
                    await self.cache.dead_letter(entry, "recorded already (a copy pushed again)")
                    continue
                await self.repo.audit(
                    entry.action,
                    entry.target,
                    f"{entry.detail}; {relayed}" if entry.detail else relayed,
                    who=entry.actor,
                    at=entry.at,
                )
            except Exception as exc:
                if not await self._database_answers():  # the entries wait in Redis for it
                    await self.cache.put_back(entries[done:])
                    raise
                await self.cache.dead_letter(entry, f"refused by the database: {type(exc).__name__}")
                continue
            recorded += 1
        return recorded

    async def _database_answers(self) -> bool:
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_S):
                await self.repo.get_server_by_id(0)
        except Exception:  # any driver error (or no answer in time) means the database cannot answer
            return False
        return True

    async def _record_audit_requests(self) -> None:
        failing = False  # said once per outage, not every second of it
        while True:
            await asyncio.sleep(AUDIT_EVERY_S)
            try:
                await self.record_audit_requests()
                failing = False
            except Exception as exc:  # Redis or the database away: the entries wait in Redis
                if not failing:
                    log.warning("cannot record the audit entries of attached commands yet: %s", exc)
                failing = True

    async def _next_runs(self, servers: list[Server]) -> dict[int, datetime]:
        keys = [self.cache.job_key("scheduled", server.id) for server in servers]
        scores = await self.context.lanes.scheduled.scores(keys)
        now = datetime.now(timezone.utc)
        return {
            server.id: max(now, datetime.fromtimestamp(score, timezone.utc)) if score else now
            for server, score in zip(servers, scores)
            if score is not None
        }

    async def _last_outcome(self, server_id: int) -> RunOutcome | None:
        runs = await self.repo.recent_runs(server_id, 2)
        finished = next((run for run in runs if run.status != "running"), None)
        if finished is None:
            return None
        return RunOutcome(
            status="ok" if finished.status == "ok" else "failed", error=finished.error, duration_s=finished.duration_s
        )

    async def _filling(self) -> dict[int, dict[str, float]]:
        """The mounts full within alerts.disk_full_within, by server id: the fleet's forecasts,
        made again every FORECAST_EVERY_S (a week of hourly rollups changes slowly), their
        seconds counted down meanwhile."""
        now = time.monotonic()
        if self._forecasts is None or now - self._forecasts[0] > FORECAST_EVERY_S:
            self._forecasts = (now, await self.disk_forecasts(None))
        made, forecasts = self._forecasts
        within = self.settings.alerts.disk_full_within
        return {
            server_id: filling
            for server_id, mounts in forecasts.items()
            if (filling := {m: max(0.0, s - (now - made)) for m, s in mounts.items() if s - (now - made) <= within})
        }

    async def _rows(self, servers: list[Server]) -> list[ServerView]:
        ids = [server.id for server in servers]
        filling = await self._filling()
        latest = await self.cache.latest(ids, self.repo.latest_samples)
        next_runs = await self._next_runs([server for server in servers if server.enabled])
        outcomes = await self.cache.outcomes(ids, self._last_outcome)
        firing = await self.repo.firing_counts()
        now = datetime.now(timezone.utc)
        rows = []
        for server in servers:
            sample = latest.get(server.id)
            outcome = outcomes.get(server.id)
            rows.append(
                ServerView(
                    server=server,
                    latest=sample,
                    severities=classify(sample, server.thresholds) if sample else {},
                    status=status_of(server, sample, outcome, now),
                    error=outcome.error if outcome and outcome.status == "failed" else None,
                    last_collected_at=sample.collected_at if sample else None,
                    next_run_at=next_runs.get(server.id),
                    firing=firing.get(server.id, 0),
                    disk_full=filling.get(server.id, {}),
                    last_duration_s=outcome.duration_s if outcome else None,
                )
            )
        return rows
