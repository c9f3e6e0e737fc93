"""The queue: counts, pause state, clean, failed runs (with retry) and the schedule."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from fleettop.tui import FAILED
from fleettop.tui import format as fmt

RELOAD_INTERVAL = 2.0  # the failed runs and the schedule, while this screen is open
from fleettop.tui.widgets.bars import QueueBar


class QueueScreen(Screen):
    BINDINGS = [
        Binding("p", "toggle_pause", "Pause/resume"),
        Binding("x", "clean", "Clean"),
        Binding("t", "retry", "Retry failed run"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def compose(self) -> ComposeResult:
        yield Static("Queue", id="queue-title")
        yield QueueBar("", id="queue")
        with Vertical(id="queue-body"):
            yield Static("Failed runs — t retries the selected one", classes="section")
            yield DataTable(id="failed", cursor_type="row", zebra_stripes=True)
            yield Static("Schedule", classes="section")
            yield DataTable(id="schedule", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True, show_command_palette=False)

    async def on_mount(self) -> None:
        failed = self.query_one("#failed", DataTable)
        for label, width in (("finished", 19), ("server", 16), ("try", 3), ("error", 50)):
            failed.add_column(label, key=label, width=width)
        schedule = self.query_one("#schedule", DataTable)
        for label, width in (("server", 16), ("every", 6), ("next run", 19), ("in", 6)):
            schedule.add_column(label, key=label, width=width)
        failed.focus()
        await self.reload()
        if self.app.live:  # type: ignore[attr-defined]
            self.set_interval(RELOAD_INTERVAL, self.reload)

    async def reload(self) -> None:
        app: Any = self.app
        stats, failed_runs, schedule = (
            await app.call_service("stats"),
            await app.call_service("failed_runs", 50),
            await app.call_service("schedule"),
        )
        if stats is not FAILED:
            self.counts_changed(stats)
        if failed_runs is not FAILED:
            self._show_failed(failed_runs)
        if schedule is not FAILED:
            self._show_schedule(schedule)

    def counts_changed(self, stats: Any) -> None:
        self.query_one(QueueBar).show(stats)

    def _show_failed(self, runs: list[Any]) -> None:
        table = self.query_one("#failed", DataTable)
        selected = table.cursor_row
        table.clear()
        for run in runs:
            table.add_row(
                Text(fmt.timestamp(run.finished_at or run.started_at)), fmt.safe(run.server_name),
                Text(str(run.attempt), justify="right"), fmt.safe(run.error or "", "red"), key=str(run.id),
            )
        if runs:
            table.move_cursor(row=min(selected, len(runs) - 1), scroll=False)

    def _show_schedule(self, schedule: list[Any]) -> None:
        table = self.query_one("#schedule", DataTable)
        table.clear()
        now = self.app.clock()  # type: ignore[attr-defined]
        for name, interval, next_run_at in schedule:
            table.add_row(
                fmt.safe(name), Text(fmt.duration(interval), justify="right"),
                Text(fmt.timestamp(next_run_at)), Text(fmt.until(next_run_at, now), justify="right"),
            )

    async def action_toggle_pause(self) -> None:
        await self.app.toggle_pause()  # type: ignore[attr-defined]
        await self.reload()

    async def action_clean(self) -> None:
        removed = await self.app.call_service("clean")  # type: ignore[attr-defined]
        if removed is not FAILED:
            self.notify(f"cleaned {removed} finished job{'s' if removed != 1 else ''}")
            await self.reload()

    async def action_retry(self) -> None:
        table = self.query_one("#failed", DataTable)
        if not table.row_count:
            return
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        if await self.app.call_service("retry", int(row_key.value)) is not FAILED:  # type: ignore[attr-defined]
            self.notify("retry queued")
            await self.reload()
