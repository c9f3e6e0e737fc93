"""The queue: health, counts, pause state, clean, the workers, failed runs (with retry) and the schedule."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Footer, Static

from fleettop.domain import QueueStats, Run, WorkerInfo
from fleettop.tui import FAILED
from fleettop.tui import format as fmt
from fleettop.tui.screens.base import FleetScreen
from fleettop.tui.widgets.bars import HeaderBar, QueueBar
from fleettop.views import ScheduleEntry

RELOAD_INTERVAL = 2.0  # health, the failed runs and the schedule, while this screen is open


class QueueScreen(FleetScreen):
    MOUSE_HELP = (
        "Mouse: click a failed run to read its error in full (under the\nlist); the wheel scrolls; footer keys click."
    )
    BINDINGS = [
        Binding("p", "toggle_pause", "Pause/resume", tooltip="stop or restart collection, all workers"),
        Binding("x", "clean", "Clean", tooltip="remove old finished runs"),
        Binding("t", "retry", "Retry failed run", tooltip="collect the selected run's server now"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.failed_runs: list[Run] = []  # as shown, in the order of the table's rows

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        yield Static("Queue", id="queue-title")
        yield QueueBar("", id="queue")
        with Vertical(id="queue-body"):
            yield Static("Workers — each collects its own share of the servers", classes="section")
            yield Static("none running: nothing is collected", id="workers-none", classes="empty")
            yield DataTable(id="workers", cursor_type="none", zebra_stripes=True)
            yield Static("Failed runs — t retries the selected one", classes="section")
            yield Static("none", id="failed-none", classes="empty")
            yield DataTable(id="failed", cursor_type="row", zebra_stripes=True)
            yield Static(id="failed-error")  # the selected run's error in full, wrapped
            yield Static("Schedule", classes="section")
            yield Static("no enabled server", id="schedule-none", classes="empty")
            yield DataTable(id="schedule", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True, show_command_palette=False)

    async def on_mount(self) -> None:
        workers = self.query_one("#workers", DataTable)
        for label, width in (("worker", 28), ("host", 16), ("pid", 7), ("servers", 7), ("connections", 11)):
            workers.add_column(label, key=label, width=width)
        failed = self.query_one("#failed", DataTable)
        for label, width in (("finished", 19), ("server", 16), ("try", 3), ("error", 50)):
            failed.add_column(label, key=label, width=width)
        schedule = self.query_one("#schedule", DataTable)
        for label, width in (("server", 16), ("every", 6), ("next run", 19), ("in", 6)):
            schedule.add_column(label, key=label, width=width)
        failed.focus()
        self.fleet.counts_signal.subscribe(self, self.counts_changed)
        self._tick()
        await self.reload()
        if self.fleet.live:
            self.set_interval(1.0, self._tick)
            self.set_interval(RELOAD_INTERVAL, self.reload)

    def _tick(self) -> None:
        self.query_one(HeaderBar).show(now=self.fleet.clock())

    async def reload(self) -> None:
        app = self.fleet
        # Quiet: with Redis away these fail every 2 s, and the header and "–" counts say so.
        health, stats, failed_runs, schedule = (
            await app.attempt(lambda fleet: fleet.health(), quiet=True),
            await app.attempt(lambda fleet: fleet.stats(), quiet=True),
            await app.attempt(lambda fleet: fleet.failed_runs(50), quiet=True),
            await app.attempt(lambda fleet: fleet.schedule(), quiet=True),
        )
        if health is not FAILED:
            self.query_one(HeaderBar).show(health=health)
        self.counts_changed(None if stats is FAILED else stats)  # None: unknown, not the last figures
        if failed_runs is not FAILED:
            self._show_failed(failed_runs)
        if schedule is not FAILED:
            self._show_schedule(schedule)

    def counts_changed(self, stats: QueueStats | None) -> None:
        self.query_one(QueueBar).show(stats)
        if stats is not None:
            self._show_workers(stats.workers)

    def _show_workers(self, workers: list[WorkerInfo]) -> None:
        table = self.query_one("#workers", DataTable)
        table.clear()
        for worker in workers:
            # A process outside the ring (`collect --wait` with no worker) collects only by hand.
            servers = str(worker.servers) if worker.scheduling else "manual"
            table.add_row(
                fmt.safe(worker.id),
                fmt.safe(worker.host),
                Text(str(worker.pid), justify="right"),
                Text(servers, justify="right"),
                Text(str(worker.connections), justify="right"),
                key=worker.id,
            )
        table.display = bool(workers)
        self.query_one("#workers-none").display = not workers

    def _show_failed(self, runs: list[Run]) -> None:
        self.failed_runs = runs
        table = self.query_one("#failed", DataTable)
        selected = table.cursor_row
        table.clear()
        for run in runs:
            table.add_row(
                Text(fmt.timestamp(run.finished_at or run.started_at)),
                fmt.safe(run.server_name),
                Text(str(run.attempt), justify="right"),
                fmt.safe(run.error or "", "red"),
                key=str(run.id),
            )
        if runs:
            table.move_cursor(row=min(selected, len(runs) - 1), scroll=False)
        table.display = bool(runs)
        self.query_one("#failed-none").display = not runs
        self._show_failed_error()

    @on(DataTable.RowHighlighted, "#failed")
    def _show_failed_error(self) -> None:
        """Under the failed runs, the selected one's error in full (the column shows its start)."""
        index = self.query_one("#failed", DataTable).cursor_row
        run = self.failed_runs[index] if 0 <= index < len(self.failed_runs) else None
        line = self.query_one("#failed-error", Static)
        line.display = bool(run and run.error)
        if run and run.error:
            finished = fmt.timestamp(run.finished_at or run.started_at)
            line.update(Content.assemble((f"{finished}  ", "$text-muted"), (fmt.clean(run.error), "$text-error")))

    def _show_schedule(self, schedule: list[ScheduleEntry]) -> None:
        table = self.query_one("#schedule", DataTable)
        table.clear()
        now = self.fleet.clock()
        for entry in schedule:
            table.add_row(
                fmt.safe(entry.name),
                Text(fmt.duration(entry.interval), justify="right"),
                Text(fmt.timestamp(entry.next_run_at)),
                Text(fmt.until(entry.next_run_at, now), justify="right"),
            )
        table.display = bool(schedule)
        self.query_one("#schedule-none").display = not schedule

    async def action_toggle_pause(self) -> None:
        await self.fleet.toggle_pause()
        await self.reload()

    async def action_clean(self) -> None:
        cleaned = await self.fleet.attempt(lambda fleet: fleet.clean())
        if cleaned is not FAILED:
            self.notify(f"cleaned {cleaned.total} finished job{'s' if cleaned.total != 1 else ''}")
            await self.reload()

    async def action_retry(self) -> None:
        table = self.query_one("#failed", DataTable)
        if not self.failed_runs:
            self.notify("no failed run to retry")
            return
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        run_id = int(str(row_key.value))  # each row's key is its run's id
        if await self.fleet.attempt(lambda fleet: fleet.retry(run_id)) is not FAILED:
            self.notify("retry queued")
            await self.reload()
