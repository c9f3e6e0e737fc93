"""Alerts: firing, pending and recently resolved, with their duration, value and peak; enter
opens the server, a acknowledges, s silences the server's rule for SILENCE_S."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Footer, Static

from fleettop.alerting import shown
from fleettop.tui import FAILED
from fleettop.tui import format as fmt
from fleettop.tui.screens.base import FleetScreen
from fleettop.tui.widgets.bars import HeaderBar

RELOAD_INTERVAL = 2.0
SILENCE_S = 2 * 3600  # `s`: as `fleettop silence NAME --rule RULE --for 2h`
STATE_STYLE = {"firing": "bold red", "pending": "yellow", "resolved": "green"}


def figure(rule: str, value: float | None) -> str:
    if value is None:
        return fmt.DASH
    return f"{int(value)}x" if rule == "down" else f"{shown(rule, value)}%"


class AlertsScreen(FleetScreen):
    BINDINGS = [
        # priority: before the table's own enter, so that the footer shows it
        Binding("enter", "open", "Server", priority=True, tooltip="the selected alert's server"),
        Binding("a", "ack", "Acknowledge", tooltip="no more reminders of the selected alert"),
        Binding("s", "silence", "Silence 2h", tooltip="no notifications of this server's rule for 2 hours"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.alerts: list[Any] = []  # as shown, in the order of the table's rows

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        yield Static("Alerts — firing, pending, and resolved in the last 7 days", id="alerts-title")
        with Vertical(id="alerts-body"):
            yield Static("no alerts", id="alerts-none", classes="empty")
            yield DataTable(id="alerts", cursor_type="row", zebra_stripes=True)
            yield Static(id="alert-note")  # the selected alert's ack, silence, delivery failure
        yield Footer(compact=True, show_command_palette=False)

    async def on_mount(self) -> None:
        table = self.query_one("#alerts", DataTable)
        for label, width in (
            ("state", 8), ("server", 16), ("rule", 12), ("value", 5), ("peak", 5), ("limit", 5), ("for", 6), ("since", 16),
        ):  # fmt: skip
            table.add_column(label, key=label, width=width)
        table.focus()
        self.query_one(HeaderBar).show(now=self.fleet.clock())
        await self.reload()
        if self.fleet.live:
            self.set_interval(RELOAD_INTERVAL, self.reload)

    async def reload(self) -> None:
        app = self.fleet
        # Quiet: with the database away these fail every 2 s, and the header says so.
        health, alerts = (
            await app.attempt(lambda fleet: fleet.health(), quiet=True),
            await app.attempt(lambda fleet: fleet.alerts(everything=True), quiet=True),
        )
        if health is not FAILED:
            self.query_one(HeaderBar).show(health=health)
        if alerts is not FAILED:
            self._show(alerts)

    def _show(self, alerts: list[Any]) -> None:
        self.alerts = alerts
        now = self.fleet.clock()
        table = self.query_one("#alerts", DataTable)
        selected = table.cursor_row
        table.clear()
        for alert in alerts:
            ended = alert.resolved_at or now
            marks = (
                ("✓" if alert.acked_by else "")
                + ("z" if alert.silenced_until else "")
                + ("!" if alert.notify_error else "")
            )
            table.add_row(
                Text(f"{alert.state.value} {marks}".rstrip(), style=STATE_STYLE.get(alert.state.value, "")),
                fmt.safe(alert.server),
                fmt.safe(f"{alert.rule} {alert.label}".strip()),
                Text(figure(alert.rule, alert.value), justify="right"),
                Text(figure(alert.rule, alert.peak), justify="right"),
                Text(figure(alert.rule, alert.threshold), justify="right"),
                Text(fmt.duration((ended - alert.started_at).total_seconds()), justify="right"),
                Text(fmt.timestamp(alert.started_at)),
                key=str(alert.id),
            )
        if alerts:
            table.move_cursor(row=min(selected, len(alerts) - 1), scroll=False)
        table.display = bool(alerts)
        self.query_one("#alerts-none").display = not alerts
        self._show_note()

    @property
    def selected(self) -> Any | None:
        index = self.query_one("#alerts", DataTable).cursor_row
        return self.alerts[index] if 0 <= index < len(self.alerts) else None

    @on(DataTable.RowHighlighted, "#alerts")
    def _show_note(self) -> None:
        alert = self.selected
        parts: list[Any] = []
        if alert is not None:
            if alert.acked_by:
                parts.append((f"acknowledged by {fmt.clean(alert.acked_by)}  ", "$text-muted"))
            if alert.silenced_until:
                parts.append((f"silenced until {fmt.timestamp(alert.silenced_until)}  ", "$text-muted"))
            if alert.notify_error:
                parts.append((f"notification failed: {fmt.clean(alert.notify_error)}", "$text-error"))
        note = self.query_one("#alert-note", Static)
        note.display = bool(parts)
        note.update(Content.assemble(*parts))

    def action_open(self) -> None:
        if self.selected is not None:
            self.fleet.show_details(self.selected.server)

    async def action_ack(self) -> None:
        alert = self.selected
        if alert is None or alert.state.value == "resolved":
            self.notify("select a pending or firing alert to acknowledge", severity="warning")
            return
        if await self.fleet.attempt(lambda fleet: fleet.ack_alert(alert.id)) is not FAILED:
            self.notify(f"acknowledged {fmt.clean(alert.server)} {alert.rule}", markup=False)
            await self.reload()

    async def action_silence(self) -> None:
        alert = self.selected
        if alert is None:
            return
        done = await self.fleet.attempt(
            lambda fleet: fleet.silence(
                alert.server, rule=alert.rule, duration_s=SILENCE_S, comment="from the alerts screen"
            )
        )
        if done is not FAILED:
            self.notify(f"silenced {fmt.clean(alert.server)} {alert.rule} for 2 hours", markup=False)
            await self.reload()
