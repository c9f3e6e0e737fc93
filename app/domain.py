"""Plain data shared by every layer, and the threshold rules.

Nothing here does I/O: the parser produces these models, the store persists
them, the TUI colours them.
"""

from __future__ import annotations

import enum
import getpass
import math
import os
import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# A value is a warning from this fraction of its threshold on.
WARNING_FRACTION = 0.8


class Severity(str, enum.Enum):
    NORMAL = "normal"
    WARNING = "warning"
    CRITICAL = "critical"


class Thresholds(BaseModel):
    """Percent limits past which a server is alerting."""

    model_config = ConfigDict(extra="forbid")

    cpu: float = Field(90.0, ge=0, le=100)
    ram: float = Field(95.0, ge=0, le=100)
    disk: float = Field(90.0, ge=0, le=100)


class DiskUsage(BaseModel):
    mount: str
    device: str = ""
    fstype: str = ""
    used_bytes: int
    total_bytes: int
    percent: float
    # What df calls Avail: free to unprivileged users. used + avail is less than the size by
    # the reserved blocks, which is why percent (used / (used + avail)) is not used / size.
    avail_bytes: int | None = None  # None in samples stored before it was recorded


class Metrics(BaseModel):
    """One sample of one host, as the dashboard and the store see it."""

    collected_at: datetime
    cpu_percent: float | None = None
    mem_percent: float
    mem_used_bytes: int = 0
    mem_total_bytes: int = 0
    swap_percent: float = 0.0
    swap_used_bytes: int = 0
    swap_total_bytes: int = 0
    disk_percent: float | None = None  # the fullest real mount
    disks: list[DiskUsage] = Field(default_factory=list)
    load1: float
    load5: float
    load15: float
    procs: int
    uptime_s: float
    net_rx_bps: float | None = None
    net_tx_bps: float | None = None


def shown_percent(value: float) -> int:
    """The whole percent a figure is shown as, halves rounded up (89.5 -> 90)."""
    return math.floor(value + 0.5)


def shown_disk_percent(value: float) -> int:
    """The whole percent a disk is shown as: rounded up, as df does (90.1 -> 91). Rounded to
    9 places first, so an exact percent plus float noise stays exact."""
    return math.ceil(round(value, 9))


def severity(value: float | None, threshold: float, shown_as: Callable[[float], int] = shown_percent) -> Severity:
    """Normal below 80 % of the threshold, warning from there, critical at or past it --
    judged on the figure as shown (`shown_as`: shown_percent, or shown_disk_percent for a
    disk), so the colour always agrees with it: 89.6 shows as "90%", and is critical at a
    threshold of 90."""
    if value is None:
        return Severity.NORMAL
    shown = shown_as(value)
    if shown >= threshold:
        return Severity.CRITICAL
    if shown >= threshold * WARNING_FRACTION:
        return Severity.WARNING
    return Severity.NORMAL


def classify(metrics: Metrics, thresholds: Thresholds) -> dict[str, Severity]:
    """Severity of each thresholded metric: keys cpu, ram, disk."""
    return {
        "cpu": severity(metrics.cpu_percent, thresholds.cpu),
        "ram": severity(metrics.mem_percent, thresholds.ram),
        "disk": severity(metrics.disk_percent, thresholds.disk, shown_disk_percent),
    }


def is_alerting(metrics: Metrics, thresholds: Thresholds) -> bool:
    return Severity.CRITICAL in classify(metrics, thresholds).values()


# Every action the audit log records; an entry relayed through Redis must name one of them.
AUDIT_ACTIONS = frozenset(
    {
        "server.add",
        "alert.ack",
        "silence.add",
        "silence.expire",
        "server.edit",
        "server.remove",
        "trust",
        "untrust",
        "collect",
        "collect.all",
        "collect.retry",
        "queue.pause",
        "queue.resume",
        "queue.clean",
        "cache.clear",
        "db.upgrade",
        "db.rollup",
        "db.purge",
    }
)


def actor() -> str:
    """Who is acting, as OS user@host: what the audit log records."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


# ---------------------------------------------------------------------------
# Records the store returns and the service hands to the front ends.


class Counters(BaseModel):
    """Raw cumulative counters of one host, kept to compute CPU % and network rates by delta."""

    uptime_s: float
    cpu_total: int  # jiffies, all states, from /proc/stat
    cpu_idle: int  # idle + iowait jiffies
    net_rx_bytes: int
    net_tx_bytes: int


class Server(BaseModel):
    id: int
    name: str
    host: str
    port: int = 22
    username: str | None = None
    transport: str = "ssh"  # ssh | local
    auth: str = "agent"  # agent | key | password
    key_file: str | None = None
    has_secret: bool = False  # an encrypted password or passphrase is stored
    enabled: bool = True
    interval: int = 900
    thresholds: Thresholds = Field(default_factory=Thresholds)
    tags: tuple[str, ...] = ()
    jump: str | None = None  # the server's own (jumps.parse_jump): a group's applies when None
    # Which of interval, cpu, ram, disk the server does not set: taken from the `groups:` of its
    # tags or `defaults:` (the values above are the resolved ones); "enabled" when a group
    # disables a server enabled itself.
    inherited: tuple[str, ...] = ()
    source: str = "db"  # config | db: servers from the config file are edited there
    created_at: datetime | None = None
    updated_at: datetime | None = None


# What a stored password or passphrase is bound to, beside the server's id (fleettop.secrets):
# a change of any of these drops it, and one that does not match is never used.
SECRET_BINDING = ("host", "port", "username", "transport", "auth")


def secret_binding_changes(before: Any, after: Any) -> list[str]:
    """The SECRET_BINDING fields that differ between two servers (Server, ServerConfig or a row)."""
    return [name for name in SECRET_BINDING if getattr(before, name) != getattr(after, name)]


class Sample(Metrics):
    server_id: int
    counters: Counters | None = None


class CollectOutcome(BaseModel):
    """How a server's last manual collection ended."""

    status: Literal["ok", "failed"]
    error: str | None = None
    sample: Sample | None = None


class Run(BaseModel):
    """One collection attempt of one server."""

    id: int
    server_id: int
    server_name: str = ""
    job_key: str = ""
    trigger: str  # scheduled | manual | retry
    attempt: int = 1
    status: str  # running | ok | failed | retried (this attempt failed and another followed)
    error: str | None = None
    started_at: datetime
    finished_at: datetime | None = None
    duration_s: float | None = None


class FleetAggregate(BaseModel):
    total: int = 0
    up: int = 0
    down: int = 0
    alerting: int = 0
    avg_cpu: float | None = None
    avg_ram: float | None = None
    avg_disk: float | None = None


class CleanResult(BaseModel):
    """What a queue clean removed: finished runs and job records, completed and failed."""

    completed: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.completed + self.failed


class WorkerInfo(BaseModel):
    """A live worker process, as its heartbeat describes it."""

    id: str  # host:pid:random, unique per process start
    host: str
    pid: int
    scheduling: bool  # a member of the ring the servers are shared among (fleettop.affinity)
    servers: int = 0  # enabled servers assigned to it
    connections: int = 0  # SSH connections it holds open


class QueueStats(BaseModel):
    waiting: int = 0
    active: int = 0
    delayed: int = 0
    completed: int = 0
    failed: int = 0
    scheduled: int = 0
    paused: bool = False
    workers: list[WorkerInfo] = Field(default_factory=list)


class RunOutcome(BaseModel):
    """How a server's last finished run ended: what its row shows as up or down."""

    status: Literal["ok", "failed"]
    error: str | None = None
    duration_s: float | None = None  # how long the run took (None: cached before it was recorded)


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: str = ""


class Event(BaseModel):
    """Something changed; dashboards repaint what it names."""

    kind: Literal["sample", "run", "servers", "queue", "interrupted"]
    server_id: int | None = None
