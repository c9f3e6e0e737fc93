"""What the front ends show: a server's row, its detail, a host key check, the schedule, the
health of what fleettop runs on, and the status rule.

Pure records (pydantic, no I/O): the TUI imports them without SQLAlchemy, SAQ or SSH.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from fleettop.alerting import AlertRecord
from fleettop.domain import Run, RunOutcome, Sample, Server, Severity
from fleettop.rollup import Series

# A server whose newest sample is older than this many intervals (plus a minute) is stale.
STALE_INTERVALS = 2

Status = Literal["up", "down", "stale", "unknown", "disabled"]


class ServerView(BaseModel):
    """One server as the front ends show it: its settings, newest sample and status."""

    server: Server
    latest: Sample | None = None
    severities: dict[str, Severity] = Field(default_factory=dict)
    status: Status = "unknown"
    error: str | None = None  # the last failed run's one-line error
    last_collected_at: datetime | None = None
    next_run_at: datetime | None = None
    firing: int = 0  # alerts firing (fleettop.alerting)
    # Mounts that will be full within alerts.disk_full_within, by the forecast: seconds to full.
    disk_full: dict[str, float] = Field(default_factory=dict)
    last_duration_s: float | None = None  # how long the last finished run took, ok or failed

    def at(self, now: datetime) -> ServerView:
        """This row as it stands at `now`. Time alone turns a server whose last run succeeded
        stale once its newest sample is too old -- a paused queue, a dead worker: exactly the
        cases where no new event comes to say so. Pure: no I/O, cheap enough for every tick."""
        if self.status not in ("up", "stale"):  # down, new and off do not change with time
            return self
        status = freshness(self.server, self.latest, now)
        return self if status == self.status else self.model_copy(update={"status": status})


class HistoryCharts(BaseModel):
    """A server's history over the `span` seconds to `until`, as the detail screen charts it."""

    span: int
    until: int  # epoch seconds
    series: list[Series]  # one per chart: cpu, ram, load1, net_rx, net_tx, then disk:<mount> by mount
    full_in: dict[str, float] = Field(default_factory=dict)  # mount -> seconds until full, for mounts filling up


class ResolvedRoute(BaseModel):
    """How an SSH server is reached, as the ssh config and fleettop's settings resolve it."""

    address: str = ""
    port: int = 22
    alias: str | None = None  # the server's host, when an ssh config alias of `address`
    user: str = ""
    auth: str = ""  # what is offered: "agent, ~/.ssh/id_*", "key PATH", "password"
    jump: list[str] = Field(default_factory=list)  # user@host:port, first reached first
    problem: str | None = None  # why it cannot be resolved (a broken ssh config, a bad jump spec)


def route_text(route: ResolvedRoute) -> str:
    """user@address:port, and the alias it was reached by: "ops@10.0.1.1:22 (alias db-1)"."""
    address = f"[{route.address}]:{route.port}" if ":" in route.address else f"{route.address}:{route.port}"
    return f"{route.user}@{address}" + (f" (alias {route.alias})" if route.alias else "")


class ServerDetail(BaseModel):
    row: ServerView
    history: HistoryCharts
    runs: list[Run]
    alerts: list[AlertRecord] = Field(default_factory=list)  # its recent alerts, open first
    route: ResolvedRoute | None = None  # None: a local server (or a fleet that does not say)


class HostKeyCheck(BaseModel):
    """The host key a server presents now, and what fleettop's known_hosts files say of it."""

    server: str
    where: str  # as known_hosts names the host: name, or [name]:port
    key: str  # "<algorithm> SHA256:<fingerprint>"
    fingerprint: str  # "SHA256:<fingerprint>"
    state: Literal["trusted", "changed", "unknown"]
    record_in: Path  # the file trust_host_key writes: data_dir/known_hosts, read by this machine's workers


class ScheduleEntry(BaseModel):
    """An enabled server in the schedule: how often it is collected and when next."""

    name: str
    interval: int  # seconds
    next_run_at: datetime | None  # None: not in the scheduled queue (yet)


WorkerState = Literal["running", "paused", "none", "unknown"]


class Health(BaseModel):
    """Whether Redis and the database answer, and the workers' state ("unknown": Redis, where
    workers leave their heartbeats, did not answer). /healthz serves it as JSON, these three keys."""

    redis: bool
    database: bool
    worker: WorkerState


def status_of(server: Server, sample: Sample | None, last: RunOutcome | None, now: datetime) -> Status:
    if not server.enabled:
        return "disabled"
    if last is None:
        return "unknown"
    if last.status == "failed":
        return "down"
    return freshness(server, sample, now)


def freshness(server: Server, sample: Sample | None, now: datetime) -> Status:
    """Up while the newest sample is younger than STALE_INTERVALS intervals plus a minute, then stale."""
    fresh_for = timedelta(seconds=server.interval * STALE_INTERVALS + 60)
    if sample is None or now - sample.collected_at > fresh_for:
        return "stale"
    return "up"
