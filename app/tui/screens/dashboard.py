"""The dashboard: health, fleet summary, queue counts and the live server list."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.widgets import Footer, Input, Static

from fleettop.domain import FleetAggregate, QueueStats
from fleettop.tui import FAILED
from fleettop.tui import format as fmt
from fleettop.tui.screens.base import FleetScreen
from fleettop.tui.widgets.bars import HeaderBar, QueueBar, SummaryBar
from fleettop.tui.widgets.server_table import ServerTable
from fleettop.views import Health, ServerView

Update = TypeVar("Update", bound=Callable[..., None])


def _while_running(update: Update) -> Update:
    """Drop a data update that arrives while the app closes.

    Textual removes the screens' widgets before it stops the app's timers and workers,
    so a tick or a count refresh landing in between would find no widget to update.
    """

    @functools.wraps(update)
    def guarded(self: DashboardScreen, *args: Any, **kwargs: Any) -> None:
        if self.app.is_running and self.is_attached:
            update(self, *args, **kwargs)

    return guarded  # type: ignore[return-value]


class DashboardScreen(FleetScreen):
    MOUSE_HELP = "Mouse: click a row to select, again to open; click a\nheading to sort by it; the wheel scrolls; footer keys click."
    # The footer shows the keys used most, short enough for 80 columns with ? and q; `?`
    # lists every one (show=False ones too).
    BINDINGS = [
        Binding("c", "collect_all", "Collect all", tooltip="collect every enabled server now"),
        Binding("p", "pause", "Pause", tooltip="stop collection, for every worker"),
        Binding("p", "resume", "Resume", tooltip="restart collection, for every worker"),
        Binding("r", "collect_selected", "Collect one", show=False, tooltip="collect the selected server now"),
        Binding("enter", "details", "Details", tooltip="metrics, mounts, history, runs"),
        Binding("a", "add", "Add", show=False, tooltip="add a server"),
        Binding("e", "edit", "Edit", show=False, tooltip="edit the selected server"),
        Binding("d", "delete", "Delete", show=False, tooltip="delete the selected server (asks first)"),
        Binding(
            "slash", "filter", "Filter", key_display="/", tooltip="filter by name or host, tag:NAME by tag; esc clears"
        ),
        Binding("s", "sort", "Sort", tooltip="cycle the sort: name, status, CPU, RAM, disk, load, age"),
        Binding("g", "group", "Group", show=False, tooltip="group by tag, with a summary line each (enter folds)"),
        Binding("S", "reverse_sort", "Reverse", show=False, tooltip="reverse the sort (or click its heading again)"),
        Binding("j", "queue", "Queue", tooltip="counts, failed runs, the schedule"),
        Binding("exclamation_mark", "alerts", "Alerts", key_display="!", tooltip="firing, pending and resolved alerts"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.paused = False  # collection paused, as the last count refresh said
        self.worker: str | None = None  # running | paused | none, as the last health read said
        self._info_shown: Content | None = None

    def compose(self) -> ComposeResult:
        yield HeaderBar(demo=self.fleet.demo, id="header")
        yield SummaryBar("", id="summary")
        yield QueueBar("", id="queue")
        self._table = ServerTable(clock=self.fleet.clock, id="servers")
        yield self._table
        yield Input(placeholder="filter by name or host, tag:web by tag — enter to keep, esc to clear", id="filter")
        yield Static("", id="info")
        yield Footer(compact=True, show_command_palette=False)

    @property
    def table(self) -> ServerTable:
        """The server list; kept, so a timer firing while the app removes its widgets still
        reads the rows (the updates themselves are dropped: _while_running)."""
        return self._table

    def on_mount(self) -> None:
        self.query_one("#filter").display = False
        self.table.loading = True
        self.show_info()

    # ------------------------------------------------------------ data in

    @_while_running
    def show_rows(self, rows: list[ServerView]) -> None:
        self.table.loading = False
        self.table.set_rows(rows)
        self.show_info()
        self.show_summary()

    @_while_running
    def show_row(self, row: ServerView) -> None:
        self.table.update_row(row)
        if row.server.id == self.table.selected_id:
            self.show_info()

    @_while_running
    def show_counts(self, *, stats: QueueStats | None, aggregate: FleetAggregate | None, health: Health) -> None:
        self.query_one(QueueBar).show(stats)
        self.query_one(SummaryBar).show(aggregate=aggregate)
        self.show_health(health)
        if stats is not None and stats.paused != self.paused:  # None: Redis cannot say
            self.paused = stats.paused
            self.refresh_bindings()  # the footer's p: Pause or Resume

    @_while_running
    def show_health(self, health: Health) -> None:
        self.worker = health.worker
        self.query_one(HeaderBar).show(health=health)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pause":
            return not self.paused
        if action == "resume":
            return self.paused
        return True

    @_while_running
    def show_summary(self) -> None:
        """Recount the servers by status (after a batch of changes: one count, not one per row)."""
        if not self.table.loading:
            self.query_one(SummaryBar).show(counts=self.table.status_counts())

    @_while_running
    def remove_row(self, server_id: int) -> None:
        self.table.remove_server(server_id)
        self.show_info()
        self.show_summary()

    @_while_running
    def tick(self) -> None:
        self.query_one(HeaderBar).show(now=self.fleet.clock())
        self.table.tick()
        self.show_summary()  # a server that just turned stale is counted so
        if self.table.selected is not None:
            self.show_info()

    @on(ServerTable.Highlighted)
    def _highlighted(self) -> None:
        self.show_info()

    def show_info(self) -> None:
        """The line under the list: the selected server's state and its whole error (wrapped
        onto more lines when long, whatever the width), the sort and the filter."""
        table = self.table
        row = table.selected
        left: list[Any] = []
        if not table.rows_by_id and not table.loading:
            left = ["no servers yet: press ", ("a", "bold $accent"), " to add one"]
        elif table.filter_text and not table.row_count:
            left = [("no server matches the filter", "bold $warning"), " — esc clears it"]
        elif (tag := table.selected_group) is not None:
            left = [(fmt.clean(tag), "bold"), " — enter ", "unfolds" if tag in table.folded else "folds", " it"]
        elif row is not None:
            state = {"down": "bold $error", "stale": "bold $warning"}.get(row.status, "$text-muted")
            left += [(fmt.clean(row.server.name), "bold"), " ", (row.status, state)]
            if row.error and row.status in ("down", "stale"):
                left += [" — ", fmt.clean(row.error)]
        right: list[Any] = [
            "by tag  " if table.grouped else "",
            "sort ",
            (f"{table.sort_mode} {table.sort_arrow}", "bold"),
        ]
        if table.filter_text:
            right += [
                "  filter ",
                (fmt.clean(table.filter_text), "bold"),
                f" ({table.row_count}/{len(table.rows_by_id)})",
            ]
        left_content, right_content = Content.assemble(*left), Content.assemble(*right)
        gap = self.size.width - left_content.cell_length - right_content.cell_length - 2
        # Too long for one line: the sort and filter follow the error, and the text wraps.
        content = Content.assemble(left_content, " " * max(2, gap), right_content)
        if content != self._info_shown:
            self._info_shown = content
            self.query_one("#info", Static).update(content)

    def _selected_or_say_why(self) -> ServerView | None:
        """The selected server; with none, a word on why the key does nothing."""
        row = self.table.selected
        if row is None:
            if self.table.loading:
                why = "the server list is still loading"
            elif not self.table.rows_by_id:
                why = "no servers yet: press a to add one"
            elif self.table.selected_group is not None:
                why = "a group's summary line: move to one of its servers (enter folds the group)"
            else:
                why = f"no server matches the filter “{fmt.clean(self.table.filter_text)}”: esc clears it"
            self.notify(why, severity="warning", markup=False)
        return row

    def _nothing_runs(self) -> str:
        """Why a queued collection will not run yet, or ""."""
        if self.worker == "none":
            return "; no worker is running: nothing is collected until one runs (fleettop, or fleettop --headless)"
        if self.paused:
            return "; collection is paused: nothing runs until you resume it (p)"
        return ""

    # ------------------------------------------------------------ actions

    async def action_collect_all(self) -> None:
        count = await self.fleet.attempt(lambda fleet: fleet.collect_now(None))
        if count is not FAILED:
            waiting = self._nothing_runs()
            self.notify(
                f"queued {count} collection{'s' if count != 1 else ''}{waiting}",
                title="collect all",
                severity="warning" if waiting else "information",
            )

    async def action_collect_selected(self) -> None:
        row = self._selected_or_say_why()
        if row is None:
            return
        count = await self.fleet.attempt(lambda fleet: fleet.collect_now([row.server.name]))
        if count is not FAILED:
            waiting = self._nothing_runs()
            said = f"queued {fmt.clean(row.server.name)}" if count else "already queued"
            self.notify(said + waiting, markup=False, severity="warning" if waiting else "information")

    async def action_pause(self) -> None:
        await self.fleet.toggle_pause()

    async def action_resume(self) -> None:
        await self.fleet.toggle_pause()

    def action_details(self) -> None:
        if (tag := self.table.selected_group) is not None:  # a summary line: fold or unfold it
            self.table.toggle_fold(tag)
            self.show_info()
            return
        row = self._selected_or_say_why()
        if row is not None:
            self.fleet.show_details(row.server.name)

    @on(ServerTable.Selected)
    def _selected(self) -> None:
        self.action_details()

    def action_add(self) -> None:
        self.fleet.show_form(None)

    async def action_edit(self) -> None:
        row = self._selected_or_say_why()
        if row is None:
            return
        # The settings as stored now, not as this row last heard of them: a save a moment ago,
        # or another process's edit, may not have reached the list yet.
        current = await self.fleet.attempt(lambda fleet: fleet.server_row(row.server.id))
        if current is FAILED:
            return
        if current is None:
            self.notify(f"{fmt.clean(row.server.name)} was removed meanwhile", markup=False)
            return
        self.fleet.show_form(current.server)

    def action_delete(self) -> None:
        row = self._selected_or_say_why()
        if row is not None:
            self.fleet.confirm_delete(row.server)

    def action_sort(self) -> None:
        self.table.cycle_sort()
        self.show_info()

    def action_group(self) -> None:
        self.table.group_by_tag(not self.table.grouped)
        self.show_info()

    def action_reverse_sort(self) -> None:
        self.table.reverse_sort()
        self.show_info()

    def action_queue(self) -> None:
        self.fleet.show_queue()

    def action_alerts(self) -> None:
        self.fleet.show_alerts()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.set_filter(event.value)
        self.show_info()

    @on(Input.Submitted, "#filter")
    def _filter_kept(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = bool(box.value)
        self.table.focus()

    def key_escape(self) -> None:
        box = self.query_one("#filter", Input)
        if box.display:
            box.value = ""
            box.display = False
            self.table.focus()
