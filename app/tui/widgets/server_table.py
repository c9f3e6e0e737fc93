"""The server list: one row per server, repainted cell by cell.

Rows are never cleared and re-added on a refresh: each new ServerRow is turned
into display cells, compared with what is on screen, and only the cells that
differ are updated, so the cursor, the scroll position and the render cache of
unchanged rows survive. The filter removes and re-adds rows, but only when the
user changes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowKey

from app.tui import format as fmt


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int
    right: bool = True


COLUMNS = (
    Column("status", "", 7, right=False),
    Column("name", "server", 16, right=False),
    Column("host", "host", 16, right=False),
    Column("cpu", "cpu", 4),
    Column("ram", "ram", 4),
    Column("swap", "swap", 4),
    Column("disk", "disk", 4),
    Column("load", "load", 5),
    Column("rx", "net in", 7),
    Column("tx", "net out", 7),
    Column("uptime", "uptime", 7),
    Column("age", "age", 5),
    Column("next", "next", 5),
    Column("problem", "problem", 24, right=False),  # widened to fill the screen (on_resize)
)
TICKING = ("age", "next")  # the columns that change with the clock alone

STATUS_LABELS = {
    "up": "● up",
    "down": "✖ DOWN",
    "stale": "◌ STALE",
    "unknown": "? new",
    "disabled": "– off",
}
# Worst first: the status sort brings trouble to the top.
STATUS_ORDER = {"down": 0, "stale": 1, "unknown": 2, "up": 3, "disabled": 4}

SORTS = ("name", "status", "cpu", "ram", "disk")


def _sort_key(mode: str) -> Callable[[Any], tuple]:
    def highest_first(value: float | None) -> float:
        return -value if value is not None else float("inf")

    if mode == "status":
        return lambda row: (STATUS_ORDER.get(row.status, 9), row.server.name)
    if mode in ("cpu", "ram", "disk"):
        attribute = {"cpu": "cpu_percent", "ram": "mem_percent", "disk": "disk_percent"}[mode]
        return lambda row: (highest_first(getattr(row.latest, attribute, None)), row.server.name)
    return lambda row: row.server.name.lower()


class ServerTable(DataTable):
    """The fleet, one line per server, with a CSS class per cell (see `cell_class`)."""

    COMPONENT_CLASSES = DataTable.COMPONENT_CLASSES | {
        "cell--warning",
        "cell--critical",
        "cell--muted",
        "status--up",
        "status--down",
        "status--stale",
        "status--unknown",
        "status--disabled",
        "row--down",
        "row--stale",
    }

    def __init__(self, *, clock: Callable[[], datetime], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._clock = clock
        self.rows_by_id: dict[int, Any] = {}  # every server, filtered out or not
        self._shown: dict[int, dict[str, tuple[str, str]]] = {}  # id -> column -> (text, class)
        self._style_cache: dict[str, Any] = {}
        self.filter_text = ""
        self.sort_mode = "name"
        self._order_dirty = False
        self.fixed_columns = 2
        for column in COLUMNS:
            self.add_column(Text(column.label, justify="right" if column.right else "left"), key=column.key, width=column.width)

    def on_resize(self) -> None:
        """Give the problem column whatever width the others leave."""
        others = sum(column.width + 2 * self.cell_padding for column in COLUMNS[:-1])
        width = max(COLUMNS[-1].width, self.scrollable_content_region.width - others - 2 * self.cell_padding)
        problem = self.columns[ColumnKey("problem")]
        if problem.width != width:
            problem.width = width
            self._require_update_dimensions = True
            self._update_count += 1
            self.refresh()

    # ------------------------------------------------------------------ data in

    def set_rows(self, rows: Iterable[Any]) -> None:
        """Bring the table in line with the full server list (added, changed, removed)."""
        fresh = {row.server.id: row for row in rows}
        first_load = not self._shown
        for server_id in list(self.rows_by_id):
            if server_id not in fresh:
                self.remove_server(server_id)
        added = False
        for row in fresh.values():
            added |= self._put(row)
        if added:
            self._order_dirty = True
        self.resort_if_needed()
        if first_load:
            self.move_cursor(row=0)

    def update_row(self, row: Any) -> None:
        if self._put(row):
            self._order_dirty = True
            self.resort_if_needed()

    def remove_server(self, server_id: int) -> None:
        self.rows_by_id.pop(server_id, None)
        if self._shown.pop(server_id, None) is not None:
            self.remove_row(str(server_id))

    def _put(self, row: Any) -> bool:
        """Paint one row's changed cells; True when a row was added to the table."""
        server_id = row.server.id
        self.rows_by_id[server_id] = row
        if not self._matches(row):
            if server_id in self._shown:
                self.remove_server(server_id)
                self.rows_by_id[server_id] = row
            return False
        cells = self._cells(row, self._clock())
        shown = self._shown.get(server_id)
        if shown is None:
            self._shown[server_id] = cells
            self.add_row(*(self._render(cells[c.key], c) for c in COLUMNS), key=str(server_id))
            return True
        if self.sort_mode != "name":
            self._order_dirty = True
        self._paint(server_id, shown, cells)
        return False

    def _paint(self, server_id: int, shown: dict[str, tuple[str, str]], cells: dict[str, tuple[str, str]]) -> None:
        for column in COLUMNS:
            cell = cells[column.key]
            if shown.get(column.key) != cell:
                shown[column.key] = cell
                self.update_cell(str(server_id), column.key, self._render(cell, column))

    def tick(self) -> None:
        """Advance the clock-driven columns (age, next run) and re-sort if values moved."""
        now = self._clock()
        for server_id, shown in self._shown.items():
            row = self.rows_by_id[server_id]
            cells = {key: cell for key, cell in self._cells(row, now).items() if key in TICKING}
            self._paint(server_id, shown, {**shown, **cells})
        self.resort_if_needed()

    # ----------------------------------------------------------- filter, sort

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip().lower()
        for row in self.rows_by_id.values():
            if not self._matches(row) and row.server.id in self._shown:
                self._shown.pop(row.server.id)
                self.remove_row(str(row.server.id))
        for row in self.rows_by_id.values():
            if row.server.id not in self._shown and self._matches(row):
                self._put(row)
        self._order_dirty = True
        self.resort_if_needed()

    def cycle_sort(self) -> str:
        self.sort_mode = SORTS[(SORTS.index(self.sort_mode) + 1) % len(SORTS)]
        self._order_dirty = True
        self.resort_if_needed()
        return self.sort_mode

    def resort_if_needed(self) -> None:
        if not self._order_dirty:
            return
        self._order_dirty = False
        ordered = sorted((self.rows_by_id[i] for i in self._shown), key=_sort_key(self.sort_mode))
        if [row.server.id for row in ordered] == self.shown_ids:
            return
        # Names are unique, so the name cell identifies the row for the table's own sort.
        rank = {fmt.clean(row.server.name): index for index, row in enumerate(ordered)}
        selected = self.selected_id
        self.sort("name", key=lambda name_cell: rank[name_cell.plain])
        if selected is not None:
            self.move_cursor(row=self.get_row_index(str(selected)), scroll=False)

    # ------------------------------------------------------------- queries

    @property
    def selected_id(self) -> int | None:
        if not self._shown or self.cursor_row < 0:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except CellDoesNotExist:
            return None
        return int(row_key.value) if isinstance(row_key, RowKey) and row_key.value else None

    @property
    def selected(self) -> Any | None:
        server_id = self.selected_id
        return None if server_id is None else self.rows_by_id.get(server_id)

    @property
    def shown_ids(self) -> list[int]:
        """Server ids in screen order."""
        return [int(self._row_locations.get_key(i).value) for i in range(self.row_count)]  # type: ignore[attr-defined]

    def cell_class(self, server_id: int, column: str) -> str:
        """The class a cell is painted with: normal, warning, critical, muted, up, down, stale..."""
        return self._shown[server_id][column][1]

    def cell_text(self, server_id: int, column: str) -> str:
        return self._shown[server_id][column][0]

    def _matches(self, row: Any) -> bool:
        needle = self.filter_text
        return not needle or needle in row.server.name.lower() or needle in row.server.host.lower()

    # ----------------------------------------------------------- rendering

    def _cells(self, row: Any, now: datetime) -> dict[str, tuple[str, str]]:
        """Display text and class of every cell of one server; plain data, cheap to compare."""
        server, latest, status = row.server, row.latest, row.status
        severities = {key: getattr(value, "value", value) for key, value in (row.severities or {}).items()}
        trouble = status in ("down", "stale")
        muted = "muted" if trouble or status == "disabled" else "normal"

        def metric(key: str, text: str) -> tuple[str, str]:
            if trouble or latest is None:
                return text, muted
            return text, severities.get(key, "normal")

        problem = ""
        if status == "down":
            problem = fmt.clean(row.error or "collection failed")
        elif status == "stale":
            problem = f"no sample for {fmt.age(row.last_collected_at, now)}" + (f": {fmt.clean(row.error)}" if row.error else "")
        name_class = "down" if status == "down" else "stale" if status == "stale" else "normal"
        return {
            "status": (STATUS_LABELS.get(status, status), status),
            "name": (fmt.clean(server.name), name_class),
            "host": (fmt.clean(server.host if server.port == 22 else f"{server.host}:{server.port}"), muted),
            "cpu": metric("cpu", fmt.percent(latest.cpu_percent if latest else None)),
            "ram": metric("ram", fmt.percent(latest.mem_percent if latest else None)),
            "swap": metric("swap", fmt.percent(latest.swap_percent if latest else None)),
            "disk": metric("disk", fmt.percent(latest.disk_percent if latest else None)),
            "load": metric("load", fmt.load(latest.load1 if latest else None)),
            "rx": metric("rx", fmt.rate(latest.net_rx_bps if latest else None)),
            "tx": metric("tx", fmt.rate(latest.net_tx_bps if latest else None)),
            "uptime": metric("uptime", fmt.duration(latest.uptime_s if latest else None)),
            "age": (fmt.age(row.last_collected_at, now), "stale" if status == "stale" else muted),
            "next": (fmt.until(row.next_run_at, now) if server.enabled else fmt.DASH, muted),
            "problem": (problem, name_class),
        }

    def _render(self, cell: tuple[str, str], column: Column) -> Text:
        text, css_class = cell
        return Text(text, style=self._style_for(css_class), justify="right" if column.right else "left", end="", no_wrap=True)

    _COMPONENT_FOR = {
        "warning": "cell--warning",
        "critical": "cell--critical",
        "muted": "cell--muted",
        "up": "status--up",
        "down": "status--down",
        "stale": "status--stale",
        "unknown": "status--unknown",
        "disabled": "status--disabled",
    }

    def _style_for(self, css_class: str) -> Any:
        if css_class not in self._style_cache:
            component = self._COMPONENT_FOR.get(css_class)
            self._style_cache[css_class] = self.get_component_rich_style(component, partial=True) if component else ""
        return self._style_cache[css_class]

    def notify_style_update(self) -> None:
        """A theme change alters the component styles: repaint every cell with the new ones."""
        old = dict(self._style_cache)
        self._style_cache.clear()
        if old and any(self._style_for(name) != style for name, style in old.items()):
            for server_id, shown in self._shown.items():
                for column in COLUMNS:
                    self._data[RowKey(str(server_id))][column.key] = self._render(shown[column.key], column)  # type: ignore[index]
            self._update_count += 1
        super().notify_style_update()
