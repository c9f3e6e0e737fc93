"""One server: every metric, each mount, charts of its history (1 h to 1 y), recent runs, settings."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Static

from fleettop.domain import severity, shown_disk_percent
from fleettop.forecast import full_in_text
from fleettop.rollup import DEFAULT_POINTS, DISK_PREFIX, PERCENT_METRICS
from fleettop.tui import FAILED
from fleettop.tui import format as fmt
from fleettop.tui.screens.alerts import STATE_STYLE, figure
from fleettop.tui.screens.base import FleetScreen
from fleettop.tui.screens.confirm import ConfirmScreen, NoticeScreen
from fleettop.tui.widgets.chart import Chart, Scale
from fleettop.views import ServerDetail, route_text

# The history ranges, on the keys 1-5: (key, label, seconds).
SPANS = (
    ("1", "1h", 3600),
    ("2", "24h", 86_400),
    ("3", "7d", 7 * 86_400),
    ("4", "30d", 30 * 86_400),
    ("5", "1y", 365 * 86_400),
)
DEFAULT_SPAN = 86_400
TIER_WORDS = {"raw": "samples", "5m": "5-minute buckets", "1h": "1-hour buckets"}
# How a chart's figures are written, by metric (a disk mount's as df, rounded up).
FIGURE_FORMATS = {"cpu": fmt.percent, "ram": fmt.percent, "load1": fmt.load, "net_rx": fmt.rate, "net_tx": fmt.rate}
CHART_NAMES = {"cpu": "cpu", "ram": "ram", "load1": "load", "net_rx": "net ↓", "net_tx": "net ↑"}
SEVERITY_STYLE = {"warning": "bold $warning", "critical": "bold $error"}
STATUS_STYLE = {"up": "bold $success", "down": "bold $error", "stale": "bold $warning"}
# What `t` offers under a host-key error (the probe's wording: fleettop.probe.ssh._connect_error).
HOSTKEY_HINTS = {
    "host key unknown": "t: check the key this host presents and trust it",
    "host key CHANGED": "t: see the key this host presents now",
}
SETTINGS_LABEL = 10  # "interval  "


def _fit(value: str, width: int, *, keep_end: bool = False) -> str:
    """`value` cut to `width` cells with "…" (from the left with keep_end: a path's file name
    is the part that tells keys apart)."""
    if len(value) <= width or width < 2:
        return value
    return "…" + value[-(width - 1) :] if keep_end else value[: width - 1] + "…"


class SettingsPanel(Widget):
    """The server's settings, one per line, each value cut to the panel's width: a long key
    file path never wraps under the labels (it keeps its end, "…/id_ed25519")."""

    DEFAULT_CSS = "SettingsPanel { height: auto; }"

    # (label, value, keep the end when cut)
    lines: reactive[tuple[tuple[str, str, bool], ...]] = reactive(tuple, layout=True)

    def render(self) -> Content:
        width = max(1, self.content_size.width - SETTINGS_LABEL)
        return Content("\n").join(
            Content.assemble(label.ljust(SETTINGS_LABEL), _fit(value, width, keep_end=keep_end))
            for label, value, keep_end in self.lines
        )


def _threshold(metric: str, thresholds: Any) -> float | None:
    if metric.startswith(DISK_PREFIX):
        return float(thresholds.disk)
    return {"cpu": thresholds.cpu, "ram": thresholds.ram}.get(metric)


def _figure(metric: str) -> Any:
    return fmt.disk_percent if metric.startswith(DISK_PREFIX) else FIGURE_FORMATS.get(metric, fmt.load)


def _scale(metric: str, peak: float) -> Scale:
    if metric in PERCENT_METRICS or metric.startswith(DISK_PREFIX):
        return Scale(100.0)
    return Scale.for_values(None, peak, floor=1024.0 if metric.startswith("net_") else 1.0)


class DetailScreen(FleetScreen):
    MOUSE_HELP = "Mouse: click a run to read its error in full (under the list);\nthe wheel scrolls; footer keys click."
    BINDINGS = [
        Binding("r", "collect", "Collect now"),
        Binding("e", "edit", "Edit"),
        *(
            Binding(key, f"span({seconds})", f"History {label}", show=False, tooltip="the charts' range")
            for key, label, seconds in SPANS
        ),
        Binding("t", "trust", "Trust host key", tooltip="show the host's key; trust it (asks first)"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.server_name = name
        self.server_id: int | None = None
        self.detail: ServerDetail | None = None
        self._offers_trust = False  # the footer's t, shown while a host key stops collection
        self.span = DEFAULT_SPAN
        self._charts: tuple[str, ...] = ()  # the metrics charted now, in order

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static(id="title")
            with Horizontal(id="top"):
                yield Static(id="metrics", classes="panel")
                yield SettingsPanel(id="settings", classes="panel")
            # Its alerts first (none: no section), then the history.
            yield Static("Alerts", id="alerts-head", classes="section")
            yield DataTable(id="server-alerts", cursor_type="none", zebra_stripes=True)
            yield Static(id="history-head", classes="section")
            yield Vertical(id="history")
            yield Static("Mounts", classes="section")
            yield DataTable(id="mounts", cursor_type="none", zebra_stripes=True)
            yield Static("Recent runs", classes="section")
            yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
            yield Static(id="run-error")  # the selected run's error in full, wrapped
        yield Footer(compact=True, show_command_palette=False)

    async def on_mount(self) -> None:
        mounts = self.query_one("#mounts", DataTable)
        for label, width in (
            ("mount", 15),
            ("device", 14),
            ("fs", 6),
            ("used", 7),
            ("avail", 7),
            ("size", 7),
            ("use", 5),
        ):
            mounts.add_column(label, key=label, width=width)
        server_alerts = self.query_one("#server-alerts", DataTable)
        for label, width in (("state", 8), ("rule", 12), ("value", 5), ("peak", 5), ("started", 19), ("resolved", 19)):
            server_alerts.add_column(label, key=label, width=width)
        runs = self.query_one("#runs", DataTable)
        for label, width in (("started", 19), ("trigger", 9), ("try", 3), ("status", 7), ("took", 6), ("error", 48)):
            runs.add_column(label, key=label, width=width)
        self.fleet.servers_signal.subscribe(self, self.server_changed)
        await self.reload()
        if self.fleet.live:
            self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        """Time alone turns a server stale and moves the sample's age and the next run on."""
        if self.detail is not None:
            self._show_status(self.detail)

    async def action_span(self, seconds: int) -> None:
        self.span = seconds
        await self.reload()

    async def reload(self) -> None:
        width = max(DEFAULT_POINTS, self.size.width * 2)  # two braille dots a cell
        detail = await self.fleet.attempt(lambda fleet: fleet.server_detail(self.server_name, self.span, width))
        if detail is FAILED or detail is None:
            return
        self.detail = detail
        self.server_id = detail.row.server.id
        await self._show(detail)

    async def server_changed(self, server_ids: set[int]) -> None:
        if self.server_id in server_ids:
            await self.reload()

    async def _show(self, detail: ServerDetail) -> None:
        self._show_status(detail)
        await self._show_history(detail)
        self._show_mounts_and_runs(detail)

    def _show_status(self, detail: ServerDetail) -> None:
        """The title, the figures and the settings: what changes with time alone."""
        now = self.fleet.clock()
        row = detail.row.at(now)
        server, latest = row.server, row.latest
        title: list[Any] = [
            (fmt.clean(server.name), "bold"),
            "  ",
            (row.status, STATUS_STYLE.get(row.status, "$text-muted")),
        ]
        hint = self._hostkey_hint()
        if row.error and row.status in ("down", "stale"):
            # The whole error, wrapped: its end is the fix ("...; check it and run: ...").
            title += ["  ", (fmt.clean(row.error), "$error" if row.status == "down" else "$warning")]
            if hint:
                title += ["\n", (hint, "bold $accent")]
        self.query_one("#title", Static).update(Content.assemble(*title))
        if (hint is not None) != self._offers_trust:  # the footer is rebuilt only when t comes or goes
            self._offers_trust = hint is not None
            self.refresh_bindings()

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
                    "ram     ",
                    figure("ram", fmt.percent(latest.mem_percent)),
                    f"  {fmt.size(latest.mem_used_bytes)} of {fmt.size(latest.mem_total_bytes)}",
                ),
                Content.assemble(
                    "swap    ",
                    (fmt.percent(latest.swap_percent), "bold"),
                    f"  {fmt.size(latest.swap_used_bytes)} of {fmt.size(latest.swap_total_bytes)}",
                ),
                Content.assemble("disk    ", figure("disk", fmt.disk_percent(latest.disk_percent)), "  fullest mount"),
                Content.assemble("load    ", (f"{latest.load1:.2f} {latest.load5:.2f} {latest.load15:.2f}", "bold")),
                Content.assemble("procs   ", (str(latest.procs), "bold")),
                Content.assemble(
                    "net     ",
                    ("↓ " + fmt.rate(latest.net_rx_bps), "bold"),
                    "  ",
                    ("↑ " + fmt.rate(latest.net_tx_bps), "bold"),
                ),
                Content.assemble("uptime  ", (fmt.duration(latest.uptime_s), "bold")),
                Content.assemble(
                    "sampled ",
                    f"{fmt.age(latest.collected_at, now)} ago",
                    (f"  {fmt.clock_time(latest.collected_at, now)}", "$text-muted"),
                ),
            ]
        self.query_one("#metrics", Static).update(Content("\n").join(lines))

        thresholds = server.thresholds
        where = f"{server.host} (local)" if server.transport == "local" else f"{server.host}:{server.port}"
        route = detail.route
        reached = [("host", fmt.clean(f"{server.username + '@' if server.username else ''}{where}"), False)]
        if route is not None and route.problem:
            reached.append(("route", fmt.clean(route.problem), False))
        elif route is not None:  # the ssh config's alias and jump hosts resolved
            reached = [("host", fmt.clean(route_text(route)), False)]
            if route.jump:
                reached.append(("via", fmt.clean(" -> ".join(route.jump)), False))
        settings = [
            *reached,
            *([("tags", fmt.clean(", ".join(server.tags)), False)] if server.tags else []),
            ("auth", server.auth, False),
            *([("key file", fmt.clean(server.key_file), True)] if server.key_file else []),
            ("interval", fmt.duration(server.interval) + ("" if server.enabled else "  (disabled)"), False),
            ("next run", fmt.until(row.next_run_at, now) if server.enabled else fmt.DASH, False),
            ("alert %", f"cpu {thresholds.cpu:g}  ram {thresholds.ram:g}  disk {thresholds.disk:g}", False),
            ("source", "config file" if server.source == "config" else "added here", False),
        ]
        self.query_one(SettingsPanel).lines = tuple(settings)

    async def _show_history(self, detail: ServerDetail) -> None:
        """One chart a metric over the chosen range, each headed by its minimum, average and
        maximum over the range, its threshold (drawn as a dotted line), and for a mount that
        fills up, when it will be full."""
        history, thresholds = detail.history, detail.row.server.thresholds
        spans = [
            (f" {key} {label} ", "reverse bold" if seconds == history.span else "$text-muted")
            for key, label, seconds in SPANS
        ]
        tier = TIER_WORDS.get(history.series[0].tier, "") if history.series else ""
        start = datetime.fromtimestamp(history.until - history.span, timezone.utc)
        since = f"  from {fmt.clock_time(start, self.fleet.clock())}"  # the charts' left edge
        self.query_one("#history-head", Static).update(
            Content.assemble("History ", *spans, (f"  {tier}{since}", "$text-muted"))
        )
        box = self.query_one("#history", Vertical)
        metrics = tuple(series.metric for series in history.series)
        if metrics != self._charts:  # mounts came or went: build the charts again
            await box.remove_children()
            await box.mount_all(
                widget
                for index in range(len(metrics))
                for widget in (Static(classes="chart-head", id=f"chart-head-{index}"), Chart(id=f"chart-{index}"))
            )
            self._charts = metrics
        for index, series in enumerate(history.series):
            threshold = _threshold(series.metric, thresholds)
            figure = _figure(series.metric)
            summary = series.summary()
            mount = series.metric[len(DISK_PREFIX) :] if series.metric.startswith(DISK_PREFIX) else None
            name = fmt.clean(mount) if mount is not None else CHART_NAMES.get(series.metric, series.metric)
            head: list[Any] = [(f"{name:<8}", "bold")]
            if summary is None:
                head.append(("no data in this range", "$text-muted"))
            else:
                head += [
                    "min ",
                    (figure(summary.min), "bold"),
                    "  avg ",
                    (figure(summary.avg), "bold"),
                    "  max ",
                    (figure(summary.max), "bold"),
                ]
            if threshold is not None:
                head.append((f"  alert at {threshold:g}%", "$text-muted"))
            if mount is not None and mount in history.full_in:
                head += ["  ", (full_in_text(history.full_in[mount]), "bold $warning")]
            self.query_one(f"#chart-head-{index}", Static).update(Content.assemble(*head))
            peak = summary.max if summary else 0.0
            self.query_one(f"#chart-{index}", Chart).plot(
                series.points, history.until - history.span, history.until, _scale(series.metric, peak), threshold
            )

    def _show_mounts_and_runs(self, detail: ServerDetail) -> None:
        server, latest = detail.row.server, detail.row.latest
        thresholds = server.thresholds
        mounts = self.query_one("#mounts", DataTable)
        mounts.clear()
        for disk in latest.disks if latest else []:
            level = severity(disk.percent, thresholds.disk, shown_disk_percent).value
            mounts.add_row(
                fmt.safe(disk.mount),
                fmt.safe(disk.device),
                fmt.safe(disk.fstype),
                Text(fmt.size(disk.used_bytes), justify="right"),
                Text(fmt.size(disk.avail_bytes), justify="right"),
                Text(fmt.size(disk.total_bytes), justify="right"),
                Text(
                    fmt.disk_percent(disk.percent),
                    justify="right",
                    style={"warning": "bold yellow", "critical": "bold red"}.get(level, ""),
                ),
            )

        self._show_alerts(detail.alerts)
        runs = self.query_one("#runs", DataTable)
        selected = runs.cursor_row
        runs.clear()
        for run in detail.runs:
            runs.add_row(
                Text(fmt.timestamp(run.started_at)),
                fmt.safe(run.trigger),
                Text(str(run.attempt), justify="right"),
                Text(run.status, style="bold red" if run.status == "failed" else ""),
                Text(f"{run.duration_s:.1f}s" if run.duration_s is not None else fmt.DASH, justify="right"),
                fmt.safe(run.error or "", "red"),
            )
        if detail.runs:
            runs.move_cursor(row=min(selected, len(detail.runs) - 1), scroll=False)
        self._show_run_error()

    def _show_alerts(self, alerts: list[Any]) -> None:
        """The server's recent alerts (fleettop.alerting), open first; no section without any."""
        table = self.query_one("#server-alerts", DataTable)
        table.clear()
        for alert in alerts:
            table.add_row(
                Text(alert.state.value, style=STATE_STYLE.get(alert.state.value, "")),
                fmt.safe(f"{alert.rule} {alert.label}".strip()),
                Text(figure(alert.rule, alert.value), justify="right"),
                Text(figure(alert.rule, alert.peak), justify="right"),
                Text(fmt.timestamp(alert.started_at)),
                Text(fmt.timestamp(alert.resolved_at) if alert.resolved_at else ""),
            )
        table.display = self.query_one("#alerts-head").display = bool(alerts)

    @on(DataTable.RowHighlighted, "#runs")
    def _show_run_error(self) -> None:
        """Under the runs, the selected run's error in full (the column shows its start)."""
        runs = self.detail.runs if self.detail is not None else []
        index = self.query_one("#runs", DataTable).cursor_row
        run = runs[index] if 0 <= index < len(runs) else None
        line = self.query_one("#run-error", Static)
        line.display = bool(run and run.error)
        if run and run.error:
            line.update(
                Content.assemble(
                    (f"{fmt.timestamp(run.started_at)}  ", "$text-muted"), (fmt.clean(run.error), "$text-error")
                )
            )

    async def action_collect(self) -> None:
        count = await self.fleet.attempt(lambda fleet: fleet.collect_now([self.server_name]))
        if count is not FAILED:
            self.notify(f"queued {fmt.clean(self.server_name)}", markup=False)

    def _hostkey_hint(self) -> str | None:
        """What `t` offers, when the server's last error is about its host key."""
        row = self.detail.row if self.detail is not None else None
        if row is None or not row.error or row.status not in ("down", "stale"):
            return None
        return next((hint for words, hint in HOSTKEY_HINTS.items() if words in row.error), None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "trust":  # offered while a host key is what stops the collection
            return self._hostkey_hint() is not None
        return True

    async def action_trust(self) -> None:
        """Show the key the host presents; a new key is trusted once confirmed (Cancel first),
        a changed one only ever from the CLI."""
        if self.detail is None:
            return
        name = self.detail.row.server.name
        self.notify(f"fetching the host key of {fmt.clean(name)}…", markup=False, timeout=3)
        check = await self.fleet.attempt(lambda fleet: fleet.check_host_key(name))
        if check is FAILED:
            return
        presented = f"{fmt.clean(check.server)} ({fmt.clean(check.where)}) presents the host key\n\n    {fmt.clean(check.key)}\n"
        if check.state == "trusted":
            self.notify(f"{fmt.clean(check.server)}: this key is already trusted ({check.fingerprint})", markup=False)
        elif check.state == "changed":
            self.app.push_screen(
                NoticeScreen(
                    presented + "\nWARNING: a DIFFERENT key is trusted for this host. Unless you know why it changed "
                    "(reinstalled, new host keys), someone may be intercepting the connection.\n\n"
                    f"A changed key is not replaced from here. Check it, then run:\n    fleettop trust {fmt.clean(name)} --replace",
                    title="Host key CHANGED",
                )
            )
        else:

            async def trust(confirmed: bool | None) -> None:
                if not confirmed:
                    return
                path = await self.fleet.attempt(lambda fleet: fleet.trust_host_key(name, check.fingerprint))
                if path is FAILED:
                    return
                self.notify(f"trusted: recorded in {fmt.clean(path)}; collecting {fmt.clean(name)}", markup=False)
                await self.fleet.attempt(lambda fleet: fleet.collect_now([name]))

            self.app.push_screen(
                ConfirmScreen(
                    presented
                    + "\nCompare it with the server's own (ssh-keygen -lf on its /etc/ssh/ssh_host_*_key.pub).\n"
                    f"Trust it, recording it in {fmt.clean(check.record_in)}\n(read by the workers on this machine)?",
                    confirm="Trust",
                ),
                trust,
            )

    def action_edit(self) -> None:
        if self.detail is not None:
            self.fleet.show_form(self.detail.row.server)
