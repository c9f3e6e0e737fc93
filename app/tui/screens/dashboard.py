"""The dashboard: health, fleet summary, queue counts and the live server list."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from fleettop.tui import FAILED
from fleettop.tui import format as fmt
from fleettop.tui.widgets.bars import HeaderBar, QueueBar, SummaryBar
from fleettop.tui.widgets.server_table import ServerTable


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


class DashboardScreen(Screen):
    BINDINGS = [
        Binding("c", "collect_all", "Collect all", tooltip="collect every enabled server now"),
        Binding("p", "toggle_pause", "Pause", tooltip="stop or restart collection, for every worker"),
        Binding("r", "collect_selected", "Collect one", tooltip="collect the selected server now"),
        Binding("enter", "details", "Details", tooltip="metrics, mounts, history, runs"),
        Binding("a", "add", "Add", tooltip="add a server"),
        Binding("e", "edit", "Edit", tooltip="edit the selected server"),
        Binding("d", "delete", "Delete", tooltip="delete the selected server (asks first)"),
        Binding("slash", "filter", "Filter", key_display="/", tooltip="filter by name or host; esc clears"),
        Binding("s", "sort", "Sort", tooltip="cycle the sort: name, status, CPU, RAM, disk"),
        Binding("j", "queue", "Queue", tooltip="counts, failed runs, the schedule"),
    ]

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        yield SummaryBar("", id="summary")
        yield QueueBar("", id="queue")
        yield ServerTable(clock=self.app.clock, id="servers")
        yield Input(placeholder="filter by name or host — enter to keep, esc to clear", id="filter")
        yield Static("", id="info")
        yield Footer(compact=True, show_command_palette=False)

    @property
    def table(self) -> ServerTable:
        return self.query_one(ServerTable)

    def on_mount(self) -> None:
        self.query_one("#filter").display = False
        self.table.loading = True
        self.show_info()

    # ------------------------------------------------------------ data in

    @_while_running
    def show_rows(self, rows: list[Any]) -> None:
        self.table.loading = False
        self.table.set_rows(rows)
        self.show_info()

    @_while_running
    def show_row(self, row: Any) -> None:
        self.table.update_row(row)
        if row.server.id == self.table.selected_id:
            self.show_info()

    @_while_running
    def show_counts(self, *, stats: Any, aggregate: Any, health: dict[str, Any]) -> None:
        self.query_one(QueueBar).show(stats)
        if aggregate is not None:
            self.query_one(SummaryBar).show(aggregate)
        self.query_one(HeaderBar).show(health=health)

    @_while_running
    def show_health(self, health: dict[str, Any]) -> None:
        self.query_one(HeaderBar).show(health=health)

    @_while_running
    def remove_row(self, server_id: int) -> None:
        self.table.remove_server(server_id)
        self.show_info()

    @_while_running
    def tick(self) -> None:
        self.query_one(HeaderBar).show(now=self.app.clock())
        self.table.tick()

    @on(ServerTable.Highlighted)
    def _highlighted(self) -> None:
        self.show_info()

    def show_info(self) -> None:
        """One line under the list: the selected server's state and error, the sort and filter."""
        table = self.table
        row = table.selected
        left: list[Any] = []
        if not table.rows_by_id and not table.loading:
            left = ["no servers yet: press ", ("a", "bold $accent"), " to add one"]
        elif row is not None:
            state = {"down": "bold $error", "stale": "bold $warning"}.get(row.status, "$text-muted")
            left += [(fmt.clean(row.server.name), "bold"), " ", (row.status, state)]
            if row.error and row.status in ("down", "stale"):
                left += [" — ", fmt.clean(row.error)]
        right: list[Any] = ["sort ", (table.sort_mode, "bold")]
        if table.filter_text:
            right += ["  filter ", (table.filter_text, "bold"), f" ({table.row_count}/{len(table.rows_by_id)})"]
        left_content, right_content = Content.assemble(*left), Content.assemble(*right)
        gap = max(2, self.size.width - left_content.cell_length - right_content.cell_length - 2)
        self.query_one("#info", Static).update(Content.assemble(left_content, " " * gap, right_content))

    # ------------------------------------------------------------ actions

    async def action_collect_all(self) -> None:
        count = await self.app.call_service("collect_now", None)
        if count is not FAILED:
            self.notify(f"queued {count} collection{'s' if count != 1 else ''}", title="collect all")

    async def action_collect_selected(self) -> None:
        row = self.table.selected
        if row is None:
            return
        count = await self.app.call_service("collect_now", [row.server.name])
        if count is not FAILED:
            self.notify(f"queued {fmt.clean(row.server.name)}" if count else "already queued", markup=False)

    async def action_toggle_pause(self) -> None:
        await self.app.toggle_pause()

    def action_details(self) -> None:
        row = self.table.selected
        if row is not None:
            self.app.show_details(row.server.name)

    @on(ServerTable.Selected)
    def _selected(self) -> None:
        self.action_details()

    def action_add(self) -> None:
        self.app.show_form(None)

    def action_edit(self) -> None:
        row = self.table.selected
        if row is not None:
            self.app.show_form(row.server)

    def action_delete(self) -> None:
        row = self.table.selected
        if row is not None:
            self.app.confirm_delete(row.server)

    def action_sort(self) -> None:
        self.table.cycle_sort()
        self.show_info()

    def action_queue(self) -> None:
        self.app.show_queue()

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

