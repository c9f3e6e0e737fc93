"""One server: every metric, each mount, 1 h and 24 h history, recent runs, settings."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Static

from fleettop.domain import severity
from fleettop.tui import FAILED
from fleettop.tui import format as fmt
from fleettop.tui.widgets.spark import Spark

# (label, attribute of a history point, unit): the series drawn as sparklines.
SERIES = (("cpu", "cpu", "%"), ("ram", "ram", "%"), ("disk", "disk", "%"), ("load", "load1", ""))
SEVERITY_STYLE = {"warning": "bold $warning", "critical": "bold $error"}
STATUS_STYLE = {"up": "bold $success", "down": "bold $error", "stale": "bold $warning"}


def _values(points: list[Any], attribute: str) -> list[float]:
    return [value for point in points if (value := getattr(point, attribute, None)) is not None]


class DetailScreen(Screen):
    BINDINGS = [
        Binding("r", "collect", "Collect now"),
        Binding("e", "edit", "Edit"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.server_name = name
        self.server_id: int | None = None
        self.detail: Any = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static(id="title")
            with Horizontal(id="top"):
                yield Static(id="metrics", classes="panel")
                yield Static(id="settings", classes="panel")
            with Grid(id="history", classes="panel"):
                yield Label("")
                yield Label("last hour", classes="history-head")
                yield Label("peak", classes="history-head")
                yield Label("last 24 hours", classes="history-head")
                yield Label("peak", classes="history-head")
                for label, attribute, unit in SERIES:
                    yield Label(label, classes="series-name")
                    for span in ("h1", "h24"):
                        yield Spark(ceiling=100.0 if unit == "%" else None, id=f"{span}-{attribute}")
                        yield Label("", id=f"{span}-{attribute}-peak", classes="peak")
            yield Static("Mounts", classes="section")
            yield DataTable(id="mounts", cursor_type="none", zebra_stripes=True)
            yield Static("Recent runs", classes="section")
            yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True, show_command_palette=False)

    async def on_mount(self) -> None:
        mounts = self.query_one("#mounts", DataTable)
        for label, width in (("mount", 15), ("device", 14), ("fs", 6), ("used", 7), ("avail", 7), ("size", 7), ("use", 5)):
            mounts.add_column(label, key=label, width=width)
        runs = self.query_one("#runs", DataTable)
        for label, width in (("started", 19), ("trigger", 9), ("try", 3), ("status", 7), ("took", 6), ("error", 48)):
            runs.add_column(label, key=label, width=width)
        await self.reload()

    async def reload(self) -> None:
        detail = await self.app.call_service("server_detail", self.server_name)
        if detail is FAILED or detail is None:
            return
        self.detail = detail
        self.server_id = detail.row.server.id
        self._show(detail)

    async def server_changed(self, server_ids: set[int]) -> None:
        if self.server_id in server_ids:
            await self.reload()

    def _show(self, detail: Any) -> None:
        row = detail.row
        server, latest = row.server, row.latest
        now = self.app.clock()
        title: list[Any] = [(fmt.clean(server.name), "bold"), "  ", (row.status, STATUS_STYLE.get(row.status, "$text-muted"))]
        if row.error and row.status in ("down", "stale"):
            title += ["  ", (fmt.clean(row.error), "$error" if row.status == "down" else "$warning")]
        self.query_one("#title", Static).update(Content.assemble(*title))

        severities = {key: getattr(value, "value", value) for key, value in (row.severities or {}).items()}

        def figure(key: str, text: str) -> tuple[str, str]:
            return text, SEVERITY_STYLE.get(severities.get(key, ""), "bold")

        lines: list[Content]
        if latest is None:
            lines = [Content("no sample yet")]
        else:
            lines = [
                Content.assemble("cpu     ", figure("cpu", fmt.percent(latest.cpu_percent))),
                Content.assemble(
                    "ram     ", figure("ram", fmt.percent(latest.mem_percent)),
                    f"  {fmt.size(latest.mem_used_bytes)} of {fmt.size(latest.mem_total_bytes)}",
                ),
                Content.assemble(
                    "swap    ", (fmt.percent(latest.swap_percent), "bold"),
                    f"  {fmt.size(latest.swap_used_bytes)} of {fmt.size(latest.swap_total_bytes)}",
                ),
                Content.assemble("disk    ", figure("disk", fmt.disk_percent(latest.disk_percent)), "  fullest mount"),
                Content.assemble("load    ", (f"{latest.load1:.2f} {latest.load5:.2f} {latest.load15:.2f}", "bold")),
                Content.assemble("procs   ", (str(latest.procs), "bold")),
                Content.assemble(
                    "net     ", ("↓ " + fmt.rate(latest.net_rx_bps), "bold"), "  ", ("↑ " + fmt.rate(latest.net_tx_bps), "bold")
                ),
                Content.assemble("uptime  ", (fmt.duration(latest.uptime_s), "bold")),
                Content.assemble(
                    "sampled ", f"{fmt.age(latest.collected_at, now)} ago", (f"  {fmt.clock_time(latest.collected_at, now)}", "$text-muted")
                ),
            ]
        self.query_one("#metrics", Static).update(Content("\n").join(lines))

        thresholds = server.thresholds
        auth = server.auth + (f" {fmt.clean(server.key_file)}" if server.key_file else "")
        where = f"{server.host} (local)" if server.transport == "local" else f"{server.host}:{server.port}"
        settings = [
            Content.assemble("host      ", fmt.clean(f"{server.username + '@' if server.username else ''}{where}")),
            Content.assemble("auth      ", auth),
            Content.assemble("interval  ", fmt.duration(server.interval), "" if server.enabled else "  (disabled)"),
            Content.assemble("next run  ", fmt.until(row.next_run_at, now) if server.enabled else fmt.DASH),
            Content.assemble("alert %   ", f"cpu {thresholds.cpu:g}  ram {thresholds.ram:g}  disk {thresholds.disk:g}"),
            Content.assemble("source    ", "config file" if server.source == "config" else "added here"),
        ]
        self.query_one("#settings", Static).update(Content("\n").join(settings))

        for _, attribute, unit in SERIES:
            for span, points in (("h1", detail.history_1h), ("h24", detail.history_24h)):
                values = _values(points, attribute)
                self.query_one(f"#{span}-{attribute}", Spark).values = tuple(values)
                peak = f"{max(values):.0f}{unit}" if unit and values else f"{max(values):.2f}" if values else "no data"
                self.query_one(f"#{span}-{attribute}-peak", Label).update(peak)

        mounts = self.query_one("#mounts", DataTable)
        mounts.clear()
        for disk in latest.disks if latest else []:
            level = severity(disk.percent, thresholds.disk).value
            mounts.add_row(
                fmt.safe(disk.mount), fmt.safe(disk.device), fmt.safe(disk.fstype),
                Text(fmt.size(disk.used_bytes), justify="right"), Text(fmt.size(disk.avail_bytes), justify="right"),
                Text(fmt.size(disk.total_bytes), justify="right"),
                Text(fmt.disk_percent(disk.percent), justify="right", style={"warning": "bold yellow", "critical": "bold red"}.get(level, "")),
            )

        runs = self.query_one("#runs", DataTable)
        runs.clear()
        for run in detail.runs:
            runs.add_row(
                Text(fmt.timestamp(run.started_at)), Text(run.trigger), Text(str(run.attempt), justify="right"),
                Text(run.status, style="bold red" if run.status == "failed" else ""),
                Text(f"{run.duration_s:.1f}s" if run.duration_s is not None else fmt.DASH, justify="right"),
                fmt.safe(run.error or "", "red"),
            )

    async def action_collect(self) -> None:
        count = await self.app.call_service("collect_now", [self.server_name])
        if count is not FAILED:
            self.notify(f"queued {fmt.clean(self.server_name)}", markup=False)

    def action_edit(self) -> None:
        if self.detail is not None:
            self.app.show_form(self.detail.row.server)
