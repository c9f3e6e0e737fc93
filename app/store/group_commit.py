"""The worker's per-collection writes, group-committed (GroupCommit): every collection of a
process begins (Repository.begin_collection) and finishes (finish_collection) in a batch
shared with the others in flight, a handful of transactions for a fleet's worth of jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from fleettop.config import DefaultsConfig, GroupConfig
from fleettop.domain import Counters, Server
from fleettop.errors import FleettopError
from fleettop.store import alerts, rollups
from fleettop.store.alerts import AlertSetup, Observation
from fleettop.store.db import Database, describe_error
from fleettop.store.rows import insert_samples, server_of, utcnow
from fleettop.store.tables import RUN_COLUMNS, RUNS_TABLE, SAMPLE_COLUMNS, SERVER_COLUMNS, SERVERS_TABLE

# A run's end, for executemany: by id, as finish_run sets it.
_FINISH_RUN = (
    update(RUNS_TABLE)
    .where(RUN_COLUMNS.id == bindparam("run_id"))
    .values(
        status=bindparam("new_status"),
        error=bindparam("new_error"),
        finished_at=bindparam("new_finished_at", type_=RUN_COLUMNS.finished_at.type),
        duration_s=bindparam("new_duration_s"),
    )
)


@dataclass(frozen=True)
class StartedRun:
    """A run begin_collection started: its id, and when (its duration is counted from it)."""

    id: int
    started_at: datetime


@dataclass(frozen=True)
class CollectInputs:
    """What a collection needs before it starts: Repository.begin_collection's answer."""

    server: Server
    secret: bytes | None
    done: bool  # a run with the job's key already finished ok
    counters: Counters | None  # of the newest sample: None on first contact
    run: StartedRun | None  # None when done, or disabled and skipped
    open_alerts: bool = True  # the server had an open alert: its sample is judged even if nothing breaches


@dataclass
class Begin:
    """A begin_collection waiting for its batch."""

    server_id: int
    job_key: str
    trigger: str
    attempt: int
    skip_disabled: bool


@dataclass
class Finish:
    """A finish_collection waiting for its batch: the sample's row values, the run's end."""

    run: StartedRun
    sample: dict[str, Any]
    finished_at: datetime
    observation: Observation | None = None  # for the alert rules


class GroupCommit:
    """The worker's per-collection writes, group-committed: each begin_collection and
    finish_collection waits in a list; one task writes everything pending in one
    transaction (a few statements for the whole batch, executemany), then answers each
    caller. What arrives meanwhile is the next batch, so 50 concurrent jobs make a handful
    of commits instead of 100, and no caller waits on a timer. If a batch fails, each of
    its requests is tried again alone, so one bad request (its server just removed) fails
    only its own job; a database that is away fails them all, and SAQ retries them."""

    def __init__(
        self,
        database: Database,
        defaults: DefaultsConfig,
        loop: asyncio.AbstractEventLoop,
        raw_cutoff: Callable[[], int],
        alert_setup: AlertSetup | None,
        groups: Mapping[str, GroupConfig],
    ):
        self.loop = loop
        self._database = database
        self._defaults = defaults
        self._raw_cutoff = raw_cutoff
        self._alert_setup = alert_setup
        self._groups = groups
        self._pending: list[tuple[Begin | Finish, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, request: Begin | Finish) -> Any:
        future = self.loop.create_future()
        self._pending.append((request, future))
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._drain(), name="fleettop-group-commit")
        return await future

    async def _drain(self) -> None:
        while self._pending:
            # Callers that gave up (cancelled) before their turn are not written.
            batch = [(request, future) for request, future in self._pending if not future.done()]
            self._pending = []
            try:
                results = await self._write_batch([request for request, _ in batch])
            except BaseException:  # this task cancelled (the loop closing): no caller waits forever
                for _, future in batch + self._pending:
                    future.cancel()
                raise
            for (_, future), result in zip(batch, results):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(_one_request_error(result))
                else:
                    future.set_result(result)

    async def _write_batch(self, requests: list[Begin | Finish]) -> list[Any]:
        """Each request's answer, or the exception that fails it."""
        if not requests:
            return []
        try:
            return await self._write(requests)
        except Exception as exc:
            if len(requests) == 1:
                return [exc]
        results: list[Any] = []
        for request in requests:
            results.extend(await self._write_batch([request]))
        return results

    async def _write(self, requests: list[Begin | Finish]) -> list[Any]:
        finishes = [request for request in requests if isinstance(request, Finish)]
        begins = [request for request in requests if isinstance(request, Begin)]
        answers: dict[int, Any] = {}
        async with self._database.engine.begin() as conn:
            if finishes:  # first: a begin of the same job key in this batch then sees it done
                await conn.execute(insert_samples(self._database.dialect), [request.sample for request in finishes])
                touched = [(request.sample["server_id"], request.sample["collected_at"]) for request in finishes]
                await rollups.roll_up_samples(conn, touched, oldest=self._raw_cutoff())
                await conn.execute(
                    _FINISH_RUN, [_run_end(r.run.id, r.run.started_at, "ok", None, r.finished_at) for r in finishes]
                )
                judged = [r.observation for r in finishes if r.observation is not None]
                if judged and self._alert_setup is not None:
                    pending = set(await alerts.judge(conn, self._database.dialect, self._alert_setup, judged))
                    for r in finishes:
                        answers[id(r)] = r.observation is not None and r.observation.server_id in pending
            if begins:
                answers.update(await self._begin(conn, begins))
        return [answers.get(id(request)) for request in requests]

    async def _begin(self, conn: Any, begins: list[Begin]) -> dict[int, CollectInputs | None]:
        server_ids = {request.server_id for request in begins}
        newest_counters = (
            select(SAMPLE_COLUMNS.counters)
            .where(SAMPLE_COLUMNS.server_id == SERVER_COLUMNS.id)
            .order_by(SAMPLE_COLUMNS.collected_at.desc())
            .limit(1)
            .correlate(SERVERS_TABLE)
            .scalar_subquery()
        )
        servers = {
            row.id: row
            for row in await conn.execute(
                select(
                    SERVERS_TABLE,
                    newest_counters.label("newest_counters"),
                    alerts.has_open_alerts(SERVER_COLUMNS.id).label("open_alerts"),
                ).where(SERVER_COLUMNS.id.in_(sorted(server_ids)))
            )
        }
        runs = (
            await conn.execute(
                select(RUN_COLUMNS.id, RUN_COLUMNS.job_key, RUN_COLUMNS.status, RUN_COLUMNS.started_at)
                .where(
                    RUN_COLUMNS.job_key.in_(sorted({r.job_key for r in begins})),
                    RUN_COLUMNS.status.in_(("ok", "running")),
                )
                .order_by(RUN_COLUMNS.id)
            )
        ).all()
        done = {run.job_key for run in runs if run.status == "ok"}
        now = utcnow()
        answers: dict[int, CollectInputs | None] = {}
        starting: list[tuple[Begin, CollectInputs]] = []
        for request in begins:
            row = servers.get(request.server_id)
            if row is None:
                answers[id(request)] = None
                continue
            server = server_of(row, self._defaults, self._groups)
            starts = request.job_key not in done and not (request.skip_disabled and not server.enabled)
            inputs = CollectInputs(
                server=server,
                secret=row.secret,
                done=request.job_key in done,
                counters=Counters.model_validate(row.newest_counters) if row.newest_counters else None,
                run=None,
                open_alerts=bool(row.open_alerts),
            )
            answers[id(request)] = inputs
            if starts:
                starting.append((request, inputs))
        if not starting:
            return answers
        # An attempt of one of these run keys still 'running': its worker died (the job was
        # swept and re-delivered). Found by its key, so no job record update per run; it ends
        # 'retried', as the attempt starting now follows it (not a failed run of its own).
        keys = {request.job_key for request, _ in starting}
        if dead := [run for run in runs if run.status == "running" and run.job_key in keys]:
            await conn.execute(
                _FINISH_RUN,
                [
                    _run_end(run.id, run.started_at, "retried", "lost: the worker running it stopped", now)
                    for run in dead
                ],
            )
        ids = (
            (
                await conn.execute(
                    insert(RUNS_TABLE).returning(RUN_COLUMNS.id, sort_by_parameter_order=True),
                    [
                        {
                            "server_id": r.server_id,
                            "job_key": r.job_key,
                            "trigger": r.trigger,
                            "attempt": r.attempt,
                            "status": "running",
                            "started_at": now,
                        }
                        for r, _ in starting
                    ],
                )
            )
            .scalars()
            .all()
        )
        for (request, inputs), run_id in zip(starting, ids):
            answers[id(request)] = replace(inputs, run=StartedRun(run_id, now))
        return answers


def _run_end(
    run_id: int, started_at: datetime, status: str, error: str | None, finished_at: datetime
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "new_status": status,
        "new_error": error,
        "new_finished_at": finished_at,
        "new_duration_s": (finished_at - started_at).total_seconds(),
    }


def _one_request_error(exc: Exception) -> Exception:
    """A request's failure as its caller sees it: a constraint refused is most likely the
    foreign key of a server removed meanwhile."""
    if isinstance(exc, IntegrityError):
        return FleettopError(f"{describe_error(exc)} (server removed meanwhile?)")
    return exc
