"""Plain data shared by every layer, and the threshold rules.

Nothing here does I/O: the parser produces these models, the store persists
them, the TUI colours them.
"""

from __future__ import annotations

import enum
import getpass
import os
import socket
from datetime import datetime
from typing import Literal

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


def severity(value: float | None, threshold: float) -> Severity:
    """Normal below 80 % of the threshold, warning from there, critical at or past it."""
    if value is None:
        return Severity.NORMAL
    if value >= threshold:
        return Severity.CRITICAL
    if value >= threshold * WARNING_FRACTION:
        return Severity.WARNING
    return Severity.NORMAL


def classify(metrics: Metrics, thresholds: Thresholds) -> dict[str, Severity]:
    """Severity of each thresholded metric: keys cpu, ram, disk."""
    return {
        "cpu": severity(metrics.cpu_percent, thresholds.cpu),
        "ram": severity(metrics.mem_percent, thresholds.ram),
        "disk": severity(metrics.disk_percent, thresholds.disk),
    }


def is_alerting(metrics: Metrics, thresholds: Thresholds) -> bool:
    return Severity.CRITICAL in classify(metrics, thresholds).values()


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
    source: str = "db"  # config | db: servers from the config file are edited there
    created_at: datetime | None = None
    updated_at: datetime | None = None


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


class QueueStats(BaseModel):
    waiting: int = 0
    active: int = 0
    delayed: int = 0
    completed: int = 0
    failed: int = 0
    scheduled: int = 0
    paused: bool = False
