"""A fleet of known figures at a fixed time, for pictures that never change.

The snapshot tests and the screenshot script use it instead of a live service:
the real one derives "stale" and "next run" from the wall clock and the SAQ
schedule, so its pictures would differ on every run. It answers with the real
ServerView / ServerDetail / Run models, so the screens render exactly what the
service would hand them.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta, timezone

from fleettop.alerting import AlertRecord, AlertState
from fleettop.domain import (
    DiskUsage,
    FleetAggregate,
    Metrics,
    QueueStats,
    Run,
    Sample,
    Server,
    Thresholds,
    WorkerInfo,
    classify,
)
from fleettop.rollup import Point, Series, plan_read
from fleettop.views import Health, HistoryCharts, ScheduleEntry, ServerDetail, ServerView

NOW = datetime(2026, 3, 14, 9, 26, 53, tzinfo=timezone.utc)

# name, host, cpu, ram, swap, disk, load1, rx, tx, uptime (days)
FIGURES = [
    ("web-1", "10.0.1.11", 12.0, 41.0, 0.0, 37.0, 0.42, 182_000, 1_450_000, 41),
    ("web-2", "10.0.1.12", 76.0, 58.0, 2.0, 38.0, 2.91, 240_000, 1_980_000, 41),
    ("db-1", "db1.internal", 34.0, 88.0, 11.0, 81.0, 1.73, 4_200_000, 3_100_000, 203),
    ("db-2", "db2.internal", 95.0, 97.0, 64.0, 93.0, 7.85, 5_900_000, 4_800_000, 203),
    ("cache-1", "10.0.2.21", 8.0, 63.0, 0.0, 22.0, 0.18, 9_800_000, 9_600_000, 12),
    ("batch-1", "batch1.internal", 51.0, 44.0, 5.0, 67.0, 3.20, 35_000, 12_000, 3),
]


# Mounts that the forecast says fill up soon (within alerts.disk_full_within): seconds to full.
FILLING = {"db-2": {"/": 3 * 86_400 + 4 * 3600}}


def _server(index: int, name: str, host: str, **overrides) -> Server:
    return Server(id=index + 1, name=name, host=host, username="ops", interval=60, **overrides)


def _metrics(cpu, ram, swap, disk, load1, rx, tx, days, at=NOW) -> Metrics:
    return Metrics(
        collected_at=at - timedelta(seconds=14),
        cpu_percent=cpu,
        mem_percent=ram,
        mem_used_bytes=int(ram / 100 * 16 * 2**30),
        mem_total_bytes=16 * 2**30,
        swap_percent=swap,
        swap_used_bytes=int(swap / 100 * 4 * 2**30),
        swap_total_bytes=4 * 2**30,
        disk_percent=disk,
        disks=[
            # 5 % reserved, as ext4 keeps: used + avail is 95 % of the size, and percent is df's.
            DiskUsage(
                mount="/",
                device="/dev/sda1",
                fstype="ext4",
                used_bytes=int(disk / 100 * 76e9),
                avail_bytes=int((100 - disk) / 100 * 76e9),
                total_bytes=int(80e9),
                percent=disk,
            ),
            DiskUsage(
                mount="/boot",
                device="/dev/sda2",
                fstype="ext4",
                used_bytes=int(199.5e6),
                avail_bytes=int(750.5e6),
                total_bytes=int(1e9),
                percent=21.0,
            ),
        ],
        load1=load1,
        load5=load1 * 0.9,
        load15=load1 * 0.8,
        procs=212,
        uptime_s=days * 86400 + 3600 * 5,
        net_rx_bps=rx,
        net_tx_bps=tx,
    )


def _history(row: ServerView, span: int, width: int) -> HistoryCharts:
    """A smooth, repeatable curve around the server's latest figures, over `span` seconds to
    NOW, as the service's reads would give it: `width` points at most, from the tier the span
    needs, each with a spread (min..max) about its average now and then."""
    until = int(NOW.timestamp())
    latest = row.latest
    if latest is None:
        return HistoryCharts(span=span, until=until, series=[])
    plan = plan_read(until - span, until, now=until, keep_days={"raw": 14, "5m": 90, "1h": 730}, max_points=width)
    count = plan.points
    figures = {
        "cpu": latest.cpu_percent or 0.0,
        "ram": latest.mem_percent,
        "load1": latest.load1,
        "net_rx": latest.net_rx_bps or 0.0,
        "net_tx": latest.net_tx_bps or 0.0,
        **{f"disk:{disk.mount}": disk.percent for disk in latest.disks},
    }
    series = []
    for metric, level in figures.items():
        points = []
        for index in range(count):
            wave = math.sin(index / 7) * 0.25 + math.sin(index / 2.3) * 0.08
            if metric.startswith("disk:"):
                value = level - (count - index) * 0.02  # filling up slowly
            elif metric == "ram":
                value = level * (1 + wave / 5)
            else:
                value = level * (1 + wave)
            spread = 0.1 if index % 9 == 0 and plan.tier.seconds else 0.0
            top = 100.0 if metric in ("cpu", "ram") or metric.startswith("disk:") else math.inf
            avg = min(top, max(0.0, value))
            points.append(
                Point(plan.since + index * plan.step, 5, avg * (1 - spread), avg, min(top, avg * (1 + spread)))
            )
        series.append(Series(metric, plan.tier.name, plan.step, plan.since, plan.until, tuple(points)))
    return HistoryCharts(span=span, until=until, series=series, full_in=FILLING.get(row.server.name, {}))


# With tags (the group-by-tag scene): a server's tags by its name's first part.
TAGS = {"web": ("web", "prod"), "db": ("db", "prod"), "cache": ("prod",), "edge": ("edge",)}


def _alerts() -> list[AlertRecord]:
    """db-2 past its cpu and ram thresholds (firing, one acknowledged), its disk pending, and a
    resolved episode of web-2 whose notification failed."""

    def alert(
        id_: int,
        server: str,
        rule: str,
        state: AlertState,
        value: float,
        peak: float,
        threshold: float,
        minutes: int,
        **extra,
    ) -> AlertRecord:
        started = NOW - timedelta(minutes=minutes)
        return AlertRecord(
            id=id_,
            server=server,
            server_id=4 if server == "db-2" else 2,
            rule=rule,
            label="/" if rule == "disk" else "",
            state=state,
            value=value,
            peak=peak,
            threshold=threshold,
            started_at=started,
            fired_at=None if state is AlertState.PENDING else started + timedelta(minutes=1),
            **{"resolved_at": None, "acked_by": None, **extra},
        )

    return [
        alert(12, "db-2", "ram", AlertState.FIRING, 97.0, 98.4, 95, 42, acked_by="ops@bastion", acked_at=NOW),
        alert(11, "db-2", "cpu", AlertState.FIRING, 95.0, 99.1, 90, 73),
        alert(13, "db-2", "disk", AlertState.PENDING, 93.0, 93.0, 90, 1),
        alert(
            7,
            "web-2",
            "cpu",
            AlertState.RESOLVED,
            76.0,
            94.0,
            90,
            300,
            resolved_at=NOW - timedelta(minutes=260),
            notify_error="failure: A Connection error occurred sending JSON notification to hooks.example.com.",
        ),
    ]


class FixedFleet:
    """The FleetService calls the dashboard makes, answered from fixed data. `alerts`: db-2 has
    alerts firing (the other pictures stay as they were before alerts existed); `tagged`: the
    servers carry tags (TAGS)."""

    def __init__(self, alerts: bool = False, tagged: bool = False) -> None:
        self.alert_records = _alerts() if alerts else []
        self.rows = []
        for index, (name, host, *figures) in enumerate(FIGURES):
            server = _server(index, name, host)
            metrics = _metrics(*figures)
            sample = Sample(server_id=server.id, **metrics.model_dump())
            self.rows.append(
                ServerView(
                    server=server,
                    latest=sample,
                    severities=classify(metrics, server.thresholds),
                    status="up",
                    error=None,
                    last_collected_at=sample.collected_at,
                    next_run_at=NOW + timedelta(seconds=46),
                    disk_full=FILLING.get(name, {}),
                )
            )
        down = _server(len(self.rows), "edge-1", "203.0.113.9")
        self.rows.append(
            ServerView(
                server=down,
                latest=None,
                severities={},
                status="down",
                error="edge-1 (203.0.113.9:22): connection refused",
                last_collected_at=None,
                next_run_at=NOW + timedelta(seconds=5),
            )
        )
        stale_server = _server(len(self.rows), "backup-1", "10.0.9.5", thresholds=Thresholds(disk=80))
        stale_metrics = _metrics(3.0, 22.0, 0.0, 71.0, 0.05, 1_000, 900, 88, at=NOW - timedelta(minutes=47))
        self.rows.append(
            ServerView(
                server=stale_server,
                latest=Sample(server_id=stale_server.id, **stale_metrics.model_dump()),
                severities=classify(stale_metrics, stale_server.thresholds),
                status="stale",
                error="backup-1 (10.0.9.5:22): timed out after 20 s",
                last_collected_at=stale_metrics.collected_at,
                next_run_at=NOW + timedelta(seconds=12),
            )
        )
        if tagged:
            for index, row in enumerate(self.rows):
                tags = TAGS.get(row.server.name.split("-")[0], ())
                self.rows[index] = row.model_copy(update={"server": row.server.model_copy(update={"tags": tags})})
        for row in self.rows:
            row.firing = sum(
                1 for a in self.alert_records if a.server_id == row.server.id and a.state is AlertState.FIRING
            )
        self.paused = False

    async def alerts(self, *, everything=False):
        return [a for a in self.alert_records if everything or a.state is not AlertState.RESOLVED]

    async def ack_alert(self, alert_id):
        return next(a for a in self.alert_records if a.id == alert_id)

    async def silence(self, name, *, rule, duration_s, comment=""):
        return None

    async def list_servers(self):
        return list(self.rows)

    async def server_row(self, server_id):
        return next((row for row in self.rows if row.server.id == server_id), None)

    async def server_detail(self, name, span=86_400, width=200):
        row = next(row for row in self.rows if row.server.name == name)
        return ServerDetail(
            row=row,
            history=_history(row, span, width),
            runs=self._runs(row),
            alerts=[a for a in self.alert_records if a.server_id == row.server.id],
        )

    def _runs(self, row: ServerView) -> list[Run]:
        runs = []
        for index in range(6):
            failed = row.status == "down" or (row.status == "stale" and index < 3)
            started = NOW - timedelta(seconds=14 + 60 * index)
            runs.append(
                Run(
                    id=100 - index,
                    server_id=row.server.id,
                    server_name=row.server.name,
                    trigger="manual" if index == 0 else "scheduled",
                    attempt=1,
                    status="failed" if failed else "ok",
                    error=row.error if failed else None,
                    started_at=started,
                    finished_at=started + timedelta(seconds=0.4),
                    duration_s=0.4,
                )
            )
        return runs

    async def stats(self, *, cached=False):
        return QueueStats(
            waiting=0,
            active=2,
            delayed=1,
            completed=1294,
            failed=7,
            scheduled=len(self.rows),
            paused=self.paused,
            workers=[
                WorkerInfo(id="ops-1:4021:7f3a9c2e", host="ops-1", pid=4021, scheduling=True, servers=5, connections=4),
                WorkerInfo(id="ops-2:3188:c41d0b97", host="ops-2", pid=3188, scheduling=True, servers=3, connections=3),
            ],
        )

    async def aggregate(self):
        return FleetAggregate(total=8, up=7, down=1, alerting=1, avg_cpu=40.0, avg_ram=59.0, avg_disk=58.0)

    async def health(self):
        return Health(redis=True, database=True, worker="paused" if self.paused else "running")

    async def is_paused(self):
        return self.paused

    async def pause(self, who=None):
        self.paused = True

    async def resume(self, who=None):
        self.paused = False

    async def collect_now(self, names=None):
        return len(names) if names else len(self.rows)

    async def failed_runs(self, limit=50):
        return [
            Run(
                id=9,
                server_id=7,
                server_name="edge-1",
                trigger="scheduled",
                attempt=3,
                status="failed",
                error="edge-1 (203.0.113.9:22): connection refused",
                started_at=NOW - timedelta(minutes=2),
                finished_at=NOW - timedelta(minutes=2),
                duration_s=0.1,
            ),
        ]

    async def schedule(self):
        return [
            ScheduleEntry(name=row.server.name, interval=row.server.interval, next_run_at=row.next_run_at)
            for row in self.rows
        ]

    async def events(self):
        await asyncio.Event().wait()
        yield
