"""The server list: a Line-API widget that draws only the visible lines.

A stock DataTable re-renders every visible cell through Rich whenever any cell
changes (its caches are keyed on a global update counter): ~100 ms per repaint
at 45 visible lines, whatever changed. Here each server's line is built once as
a Strip from plain segments and cached; a changed server drops its own strip and
refreshes its own line, so a live update costs one line, not the screen, and the
cursor and scroll position are never disturbed.

Each cell carries a class (normal, warning, critical, muted, up, down, stale...)
that maps to a component class styled in fleettop.tcss; `cell_class()` reports
it, which is what the tests assert.

Grouped by tag (`group_by_tag`), a summary line heads each group (servers up, down and
alerting, average cpu, ram and disk of those up); a server sits under its first tag, one
without a tag under NO_TAG. Enter on a summary line folds or unfolds its group. A list
line is a server id, or a negative key for a group's summary line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from fleettop.forecast import full_in_text
from fleettop.tui import format as fmt
from fleettop.views import ServerView


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
    Column("disk", "disk", 5),  # room for the sort arrow
    Column("load", "load", 5),
    Column("rx", "net in", 7),
    Column("tx", "net out", 7),
    Column("uptime", "uptime", 7),
    Column("age", "age", 5),
    Column("next", "next", 5),
    Column("problem", "problem", 0, right=False),  # the width the others leave, or none
)
# Narrower than this, the problem column is left out rather than cut to a stub: the full
# error of the selected server is on the lines under the list at any width.
PROBLEM_MIN = 20
FIXED = 2  # status and name stay put when the rest scrolls sideways
PADDING = 1  # blank cells each side of a value
TICKING = ("age", "next")  # the columns that change with the clock alone

STATUS_LABELS = {
    "up": "● up",
    "down": "✖ DOWN",
    "stale": "◌ STALE",
    "unknown": "? new",
    "disabled": "– off",
}
ALERT_MARK = "! "  # before the name of a server with a firing alert
# Worst first: the status sort brings trouble to the top.
STATUS_RANK = {"down": 4, "stale": 3, "unknown": 2, "up": 1, "disabled": 0}
SORTS = ("name", "status", "cpu", "ram", "disk", "load", "age")
# The value each sort orders by; None (no figure yet) always goes last.
SORT_VALUES: dict[str, Callable[[Any], Any]] = {
    "name": lambda row: row.server.name.lower(),
    "status": lambda row: STATUS_RANK.get(row.status, -1),
    "cpu": lambda row: row.latest.cpu_percent if row.latest else None,
    "ram": lambda row: row.latest.mem_percent if row.latest else None,
    "disk": lambda row: row.latest.disk_percent if row.latest else None,
    "load": lambda row: row.latest.load1 if row.latest else None,
    # the oldest sample first: by when it was taken, so the order never moves with the clock
    "age": lambda row: -fmt.aware(row.last_collected_at).timestamp() if row.last_collected_at else None,
}
ASCENDING = {"name"}  # names A to Z; every other sort puts the highest (worst, busiest, oldest) first

# Cell class -> component class (fleettop.tcss styles them).
COMPONENT_FOR = {
    "warning": "cell--warning",
    "critical": "cell--critical",
    "muted": "cell--muted",
    "up": "status--up",
    "down": "status--down",
    "stale": "status--stale",
    "unknown": "status--unknown",
    "disabled": "status--disabled",
}

Cell = tuple[str, str]  # (text, class)
NO_TAG = "(no tag)"


def sorted_ids(rows: dict[int, ServerView], mode: str, reverse: bool) -> list[int]:
    """Server ids in `mode`'s order (reversed on request), ties by name, servers without
    the figure last either way."""
    value = SORT_VALUES[mode]
    values = {server_id: value(row) for server_id, row in rows.items()}
    by_name = sorted(rows, key=lambda i: rows[i].server.name.lower())
    known = [i for i in by_name if values[i] is not None]
    missing = [i for i in by_name if values[i] is None]
    descending = (mode not in ASCENDING) != reverse
    known.sort(key=values.__getitem__, reverse=descending)  # stable: ties stay by name
    return known + missing


def cells_of(row: ServerView, now: datetime) -> dict[str, Cell]:
    """Display text and class of every cell of one server: plain data, cheap to compare."""
    server, latest, status = row.server, row.latest, row.status
    severities = {key: getattr(value, "value", value) for key, value in (row.severities or {}).items()}
    trouble = status in ("down", "stale")
    muted = "muted" if trouble or status == "disabled" else "normal"

    def metric(key: str, text: str) -> Cell:
        if trouble or latest is None:
            return text, muted
        return text, severities.get(key, "normal")

    problem = ""
    if status == "down":
        problem = fmt.clean(row.error or "collection failed")
    elif status == "stale":
        problem = f"no sample for {fmt.age(row.last_collected_at, now)}" + (
            f": {fmt.clean(row.error)}" if row.error else ""
        )
    name_class = "down" if status == "down" else "stale" if status == "stale" else "normal"
    name = fmt.clean(server.name)
    if row.firing:  # a firing alert: marked whatever the status (red unless down or stale says more)
        name = f"{ALERT_MARK}{name}"
        name_class = "critical" if name_class == "normal" else name_class
    problem_class = name_class
    if not problem and row.disk_full:
        mount, seconds = min(row.disk_full.items(), key=lambda item: item[1])
        problem, problem_class = f"{fmt.clean(mount)} {full_in_text(seconds)}", "warning"
    return {
        "status": (STATUS_LABELS.get(status, status), status),
        "name": (name, name_class),
        "host": (fmt.clean(server.host if server.port == 22 else f"{server.host}:{server.port}"), muted),
        "cpu": metric("cpu", fmt.percent(latest.cpu_percent if latest else None)),
        "ram": metric("ram", fmt.percent(latest.mem_percent if latest else None)),
        "swap": metric("swap", fmt.percent(latest.swap_percent if latest else None)),
        "disk": metric("disk", fmt.disk_percent(latest.disk_percent if latest else None)),
        "load": metric("load", fmt.load(latest.load1 if latest else None)),
        "rx": metric("rx", fmt.rate(latest.net_rx_bps if latest else None)),
        "tx": metric("tx", fmt.rate(latest.net_tx_bps if latest else None)),
        "uptime": metric("uptime", fmt.duration(latest.uptime_s if latest else None)),
        "age": (fmt.age(row.last_collected_at, now), "stale" if status == "stale" else muted),
        "next": (fmt.until(row.next_run_at, now) if server.enabled else fmt.DASH, muted),
        "problem": (problem, problem_class),
    }


def _fit(text: str, width: int, right: bool) -> str:
    if cell_len(text) >= width:
        return set_cell_size(text, width)
    gap = " " * (width - cell_len(text))
    return gap + text if right else text + gap


class ServerTable(ScrollView, can_focus=True):
    """The fleet, one line per server under a fixed header line."""

    COMPONENT_CLASSES = {
        "servertable--header",
        "servertable--cursor",
        "servertable--group",
        *COMPONENT_FOR.values(),
    }

    class Highlighted(Message):
        """The cursor moved to another server, or the sort changed around it."""

    class Selected(Message):
        """Enter, or a click on the row under the cursor."""

    def __init__(self, *, clock: Callable[[], datetime], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._clock = clock
        self.rows_by_id: dict[int, ServerView] = {}  # every server, filtered out or not
        self._cells: dict[int, dict[str, Cell]] = {}  # id -> column -> cell, for every server
        self._order: list[int] = []  # the shown servers, top to bottom
        self._position: dict[int, int] = {}
        self._strips: dict[tuple[int, bool], Strip] = {}  # (id, under cursor) -> full-width line
        self._styles: dict[str, Style] = {}
        self._widths = [column.width for column in COLUMNS]
        self.cursor = 0
        self.filter_text = ""
        self._filter_tags: list[str] = []
        self._filter_words: list[str] = []
        self.sort_mode = "name"
        self.sort_reverse = False
        self.grouped = False
        self.folded: set[str] = set()  # groups shown as their summary line alone
        self._group_keys: dict[int, str] = {}  # a summary line's (negative) key -> its tag
        self._counts: Counter[str] | None = None  # status_counts(), until a row changes
        self._order_dirty = False
        # The clock columns are advanced on the visible lines only, each tick; any other
        # line catches up when it is next read or drawn (its generation is behind).
        self._tick_now: datetime | None = None
        self._tick_generation = 0
        self._cells_generation: dict[int, int] = {}
        self._summaries_stale = False  # a group's summary line is to be drawn again

    # ------------------------------------------------------------------ data in

    def set_rows(self, rows: Iterable[ServerView]) -> None:
        """Bring the list in line with the full server list (added, changed, removed)."""
        fresh = {row.server.id: row for row in rows}
        first_load = not self.rows_by_id
        gone = [server_id for server_id in self.rows_by_id if server_id not in fresh]
        for server_id in gone:
            self._counts = None
            self.rows_by_id.pop(server_id)
            self._forget_cells(server_id)
        moved = bool(gone)
        window, now = self._window(), self._clock()
        for row in fresh.values():
            moved |= self._put(row, window, now)
        self._after_puts(moved, window)
        if first_load:
            self.move_cursor(row=0)

    def update_row(self, row: ServerView) -> None:
        window = self._window()
        self._after_puts(self._put(row, window, self._clock()), window)

    def remove_server(self, server_id: int) -> None:
        self.rows_by_id.pop(server_id, None)
        self._counts = None
        self._forget_cells(server_id)
        if server_id in self._position:
            self._reindex()

    def _forget_cells(self, server_id: int) -> None:
        if self._cells.pop(server_id, None) is not None:  # only a line once made has a strip
            self._cells_generation.pop(server_id, None)
            self._strips.pop((server_id, False), None)
            self._strips.pop((server_id, True), None)

    def _put(self, row: ServerView, window: range, now: datetime) -> bool:
        """Take a server's new state and repaint its line if it is on screen; True when it joins or
        leaves the list. Off screen, its cells are made when it is next drawn or read (a fleet of
        thousands changes every row at once, and the screen shows a few dozen)."""
        server_id = row.server.id
        row = row.at(now)  # the status as of the dashboard's clock, as each tick re-derives it
        self.rows_by_id[server_id] = row
        self._counts = None
        shown, wanted = server_id in self._position, self._matches(row)
        if shown != wanted:
            self._forget_cells(server_id)
            return True
        position = self._position.get(server_id)
        if position is None or position + 1 not in window:
            self._forget_cells(server_id)
            changed = True  # perhaps: its sort key may have moved
        else:
            cells = cells_of(row, now)
            self._cells_generation[server_id] = self._tick_generation
            changed = self._cells.get(server_id) != cells
            if changed:
                self._cells[server_id] = cells
                self._repaint(server_id, window)
        if changed:
            self._order_dirty |= self.sort_mode != "name"
            self._summaries_stale |= self.grouped  # its group's summary counts it
        return False

    def _after_puts(self, moved: bool, window: range) -> None:
        if moved:
            self._reindex()
        if self._summaries_stale:
            self._summaries_stale = False
            for line in self._group_keys:
                self._repaint(line, window)
        self.resort_if_needed()

    def _window(self) -> range:
        """The lines on screen (line 0 is the heading; server i is drawn on line i + 1)."""
        top = round(self.scroll_y)
        return range(top + 1, top + self.scrollable_content_region.height)

    def tick(self) -> None:
        """Turn every server whose newest sample got too old stale (`ServerView.at`: from the
        rows in memory, no query), and advance the clock-driven columns (age, next run, a
        stale server's problem) of the visible lines; the others catch up when shown or read
        (`_current`). Only a status change can move a row: no sort key reads the clock."""
        self._tick_now = self._clock()
        self._tick_generation += 1
        window = self._window()
        moved = False
        for row in list(self.rows_by_id.values()):
            aged = row.at(self._tick_now)
            if aged is not row:
                moved |= self._put(aged, window, self._tick_now)
        for server_id in self._order[window.start - 1 : window.stop - 1]:
            if server_id >= 0 and self._advance(server_id):
                self._repaint(server_id, window)
        self._after_puts(moved, window)

    def _advance(self, server_id: int) -> bool:
        """Bring a server's clock columns to the last tick; True when a cell changed."""
        cells = self._cells.get(server_id)
        if cells is None or self._cells_generation.get(server_id) == self._tick_generation or self._tick_now is None:
            return False  # none yet: made as of now when next read
        self._cells_generation[server_id] = self._tick_generation
        fresh = cells_of(self.rows_by_id[server_id], self._tick_now)
        if any(fresh[key] != cells[key] for key in TICKING) or fresh["problem"] != cells["problem"]:
            self._cells[server_id] = fresh
            return True
        return False

    def _current(self, server_id: int) -> dict[str, Cell]:
        """A server's cells (made now if it changed off screen), its clock columns brought up to
        the last tick."""
        if server_id not in self._cells:
            self._cells[server_id] = cells_of(self.rows_by_id[server_id], self._clock())
            self._cells_generation[server_id] = self._tick_generation
        elif self._advance(server_id):
            self._strips.pop((server_id, False), None)
            self._strips.pop((server_id, True), None)
        return self._cells[server_id]

    # ----------------------------------------------------------- filter, sort

    def set_filter(self, text: str) -> None:
        """Words the name or host must contain, and `tag:NAME` words: tags it must carry."""
        self.filter_text = text.strip().lower()
        words = self.filter_text.split()
        self._filter_tags = [word.removeprefix("tag:") for word in words if word.startswith("tag:")]
        self._filter_words = [word for word in words if not word.startswith("tag:")]
        self._reindex()
        self._scroll_to_cursor()

    def cycle_sort(self) -> str:
        return self.sort_by(SORTS[(SORTS.index(self.sort_mode) + 1) % len(SORTS)])

    def sort_by(self, mode: str, *, reverse: bool = False) -> str:
        """Sort, and show the top of the sorted list: the busiest servers, not the old cursor's place."""
        self.sort_mode, self.sort_reverse = mode, reverse
        self._reindex()
        self.move_cursor(row=0)
        self.scroll_to(y=0, animate=False)
        self.refresh()  # the heading marks the sort column
        self.post_message(self.Highlighted())
        return mode

    def reverse_sort(self) -> None:
        self.sort_by(self.sort_mode, reverse=not self.sort_reverse)

    @property
    def sort_arrow(self) -> str:
        """▲: lowest (or A) at the top; ▼: highest at the top."""
        return "▼" if (self.sort_mode not in ASCENDING) != self.sort_reverse else "▲"

    def heading(self, column: Column) -> str:
        if column.key != self.sort_mode:  # each sort is named after its column
            return column.label
        return f"{column.label or column.key}{self.sort_arrow}"

    def resort_if_needed(self) -> None:
        """After figures changed under a figure sort: reorder if the order moved."""
        if self._order_dirty:
            self._reindex()

    def _reindex(self) -> None:
        """Rebuild the shown list (filter, sort) and keep the cursor on the same server."""
        keep = self._order[self.cursor] if 0 <= self.cursor < len(self._order) else None
        shown = {i: row for i, row in self.rows_by_id.items() if self._matches(row)}
        order = sorted_ids(shown, self.sort_mode, self.sort_reverse)
        if self.grouped:
            order = self._grouped(order)
        self._order_dirty = False
        if order == self._order:
            return
        self._order = order
        self._position = {server_id: index for index, server_id in enumerate(order)}
        self._strips.clear()
        self.virtual_size = Size(self._total_width, len(order) + 1)
        if keep in self._position:
            self.cursor = self._position[keep]
        self.cursor = max(0, min(self.cursor, len(order) - 1))
        self.refresh()
        if self.selected_id != keep:
            self.post_message(self.Highlighted())

    def group_by_tag(self, grouped: bool) -> None:
        self.grouped = grouped
        self._order = []  # every line changes
        self._reindex()
        self.refresh()
        self._scroll_to_cursor()

    def toggle_fold(self, tag: str) -> None:
        self.folded ^= {tag}
        self._reindex()
        self._scroll_to_cursor()

    def _grouped(self, order: list[int]) -> list[int]:
        """The sorted servers under a summary line per tag (their first), tags by name, NO_TAG last."""
        members: dict[str, list[int]] = {}
        for server_id in order:
            tags = self.rows_by_id[server_id].server.tags
            members.setdefault(tags[0] if tags else NO_TAG, []).append(server_id)
        self._group_keys = {}
        lines: list[int] = []
        for index, tag in enumerate(sorted(members, key=lambda tag: (tag == NO_TAG, tag.lower())), 1):
            self._group_keys[-index] = tag
            lines.append(-index)
            if tag not in self.folded:
                lines.extend(members[tag])
        return lines

    def group_members(self, tag: str) -> list[ServerView]:
        """The servers (matching the filter) under a tag's summary line, folded or not."""
        return [
            row
            for row in self.rows_by_id.values()
            if self._matches(row) and (row.server.tags[0] if row.server.tags else NO_TAG) == tag
        ]

    def group_summary(self, tag: str) -> str:
        """A group's summary line: how many servers, up, down, alerting; average cpu, ram, disk."""
        rows = self.group_members(tag)
        up = [row for row in rows if row.status == "up"]
        alerting = sum(1 for row in up if any(getattr(v, "value", v) == "critical" for v in row.severities.values()))
        down = sum(1 for row in rows if row.status == "down")

        def average(attribute: str) -> float | None:
            values = [getattr(row.latest, attribute) for row in up if row.latest is not None]
            values = [value for value in values if value is not None]
            return sum(values) / len(values) if values else None

        mark = "▸" if tag in self.folded else "▾"
        return (
            f"{mark} {tag}  {len(rows)} server{'' if len(rows) == 1 else 's'}  {len(up)} up  {down} down  {alerting} alerting"
            f"  avg cpu {fmt.percent(average('cpu_percent')).strip()}  ram {fmt.percent(average('mem_percent')).strip()}"
            f"  disk {fmt.disk_percent(average('disk_percent')).strip()}"
        )

    # ------------------------------------------------------------- queries

    @property
    def row_count(self) -> int:
        """Servers shown (a summary line is not one)."""
        return sum(1 for line in self._order if line >= 0)

    @property
    def selected_group(self) -> str | None:
        """The tag of the summary line under the cursor, if the cursor is on one."""
        line = self._order[self.cursor] if 0 <= self.cursor < len(self._order) else None
        return None if line is None or line >= 0 else self._group_keys.get(line)

    @property
    def cursor_row(self) -> int:
        return self.cursor

    @property
    def selected_id(self) -> int | None:
        line = self._order[self.cursor] if 0 <= self.cursor < len(self._order) else None
        return None if line is None or line < 0 else line

    @property
    def selected(self) -> ServerView | None:
        server_id = self.selected_id
        return None if server_id is None else self.rows_by_id.get(server_id)

    def status_counts(self) -> Counter[str]:
        """How many servers (filtered out or not) have each status, how many are "alerting":
        up, with a figure at or past its threshold (drawn red), and how many alerts are "firing".
        Counted again only after a change."""
        if self._counts is None:
            self._counts = Counter(row.status for row in self.rows_by_id.values())
            self._counts["alerting"] = sum(
                1
                for row in self.rows_by_id.values()
                if row.status == "up"
                and any(getattr(level, "value", level) == "critical" for level in row.severities.values())
            )
            self._counts["firing"] = sum(row.firing for row in self.rows_by_id.values())
        return self._counts

    @property
    def shown_ids(self) -> list[int]:
        """Server ids in screen order."""
        return [line for line in self._order if line >= 0]

    def cell_class(self, server_id: int, column: str) -> str:
        """The class a cell is painted with: normal, warning, critical, muted, up, down, stale..."""
        return self._current(server_id)[column][1]

    def cell_text(self, server_id: int, column: str) -> str:
        return self._current(server_id)[column][0]

    def _matches(self, row: ServerView) -> bool:
        if not self.filter_text:
            return True
        server = row.server
        tags = {tag.lower() for tag in server.tags}
        return all(tag in tags for tag in self._filter_tags) and all(
            word in server.name.lower() or word in server.host.lower() for word in self._filter_words
        )

    # ------------------------------------------------------------- cursor

    def move_cursor(self, *, row: int, scroll: bool = True) -> None:
        previous, previous_line = self.selected_id, self.cursor
        self.cursor = max(0, min(row, len(self._order) - 1))
        for line in {previous_line, self.cursor}:
            if 0 <= line < len(self._order):
                self._repaint(self._order[line])
        if scroll:
            self._scroll_to_cursor()
        if self.selected_id != previous:
            self.post_message(self.Highlighted())

    def _scroll_to_cursor(self) -> None:
        visible = max(1, self.scrollable_content_region.height - 1)
        top = round(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + visible:
            self.scroll_to(y=self.cursor - visible + 1, animate=False)

    # Keys are key_ methods, not bindings: bindings run in the app's queue, after the
    # key has travelled up from here, so "down, enter" typed fast would open the row
    # above; key_ methods run here, in order.

    def key_up(self) -> None:
        self.move_cursor(row=self.cursor - 1)

    def key_down(self) -> None:
        self.move_cursor(row=self.cursor + 1)

    def key_pageup(self) -> None:
        self.move_cursor(row=self.cursor - max(1, self.scrollable_content_region.height - 2))

    def key_pagedown(self) -> None:
        self.move_cursor(row=self.cursor + max(1, self.scrollable_content_region.height - 2))

    def key_home(self) -> None:
        self.move_cursor(row=0)

    def key_end(self) -> None:
        self.move_cursor(row=len(self._order) - 1)

    def key_enter(self) -> None:
        # On a summary line, the screen's enter binding folds the group (it sees the key too).
        if self.selected_group is None:
            self.post_message(self.Selected())  # with nothing selected, the screen says why

    def column_at(self, x: int) -> str:
        """The key of the column under screen column x (fixed columns first, then scrolled)."""
        fixed_width = sum(w + 2 * PADDING for w in self._widths[:FIXED])
        virtual_x = x if x < fixed_width else x + round(self.scroll_x)
        edge = 0
        for column, width in zip(COLUMNS, self._widths):
            if not width:
                continue
            edge += width + 2 * PADDING
            if virtual_x < edge:
                return column.key
        return COLUMNS[-1].key

    def on_click(self, event: events.Click) -> None:
        if event.y < 1:  # a click on a header sorts by that column, where it can
            clicked = self.column_at(event.x)
            if clicked == self.sort_mode:  # the same heading again: the other way round
                self.reverse_sort()
            elif clicked in SORT_VALUES:
                self.sort_by(clicked)
            return
        index = round(self.scroll_y) + event.y - 1
        if index >= len(self._order):
            return
        if index == self.cursor and (tag := self.selected_group) is not None:
            self.toggle_fold(tag)
        elif index == self.cursor:
            self.post_message(self.Selected())
        else:
            self.move_cursor(row=index, scroll=False)

    # ----------------------------------------------------------- rendering

    @property
    def _total_width(self) -> int:
        return sum(width + 2 * PADDING for width in self._widths if width)

    def on_resize(self) -> None:
        """Give the problem column whatever width the others leave, if that is enough to read."""
        others = sum(width + 2 * PADDING for width in self._widths[:-1])
        width = self.scrollable_content_region.width - others - 2 * PADDING
        width = width if width >= PROBLEM_MIN else 0
        if width != self._widths[-1]:
            self._widths[-1] = width
            self._strips.clear()
            self.virtual_size = Size(self._total_width, len(self._order) + 1)
            self.refresh()

    def notify_style_update(self) -> None:
        """A theme change alters the component styles: rebuild every line with the new ones."""
        super().notify_style_update()
        self._styles.clear()
        self._strips.clear()

    def _repaint(self, server_id: int, window: range | None = None) -> None:
        self._strips.pop((server_id, False), None)
        self._strips.pop((server_id, True), None)
        position = self._position.get(server_id)
        if position is not None and position + 1 in (window or self._window()):
            self.refresh_line(position + 1)  # a line off screen is drawn afresh when scrolled to

    def _style(self, name: str) -> Style:
        if name not in self._styles:
            if name == "base":
                self._styles[name] = self.rich_style
            else:
                component = COMPONENT_FOR.get(name, name)
                partial = component in COMPONENT_FOR.values()
                self._styles[name] = (
                    self.get_component_rich_style(component, partial=partial)
                    if component in self.COMPONENT_CLASSES
                    else Style()
                )
        return self._styles[name]

    def _line(self, cells: list[Cell], base: Style, *, under_cursor: bool = False) -> Strip:
        segments = []
        for index, (column, (text, css_class)) in enumerate(zip(COLUMNS, cells)):
            if not self._widths[index]:  # left out (the problem column, on a narrow screen)
                continue
            style = base
            if css_class != "normal":
                cell_style = self._style(css_class)
                if under_cursor:  # the cursor's background wins; keep the cell's colour and weight
                    cell_style = Style(color=cell_style.color, bold=cell_style.bold)
                style = style + cell_style
            pad = " " * PADDING
            segments.append(Segment(pad + _fit(text, self._widths[index], column.right) + pad, style))
        return Strip(segments, self._total_width)

    def _group_strip(self, line: int) -> Strip:
        under_cursor = self._position.get(line) == self.cursor
        key = (line, under_cursor)
        strip = self._strips.get(key)
        if strip is None:
            style = self._style("base") + self._style("servertable--group")
            if under_cursor:
                style += self._style("servertable--cursor")
            text = " " + fmt.clean(self.group_summary(self._group_keys[line]))
            strip = Strip([Segment(text, style)]).extend_cell_length(self._total_width, style)
            self._strips[key] = strip
        return strip

    def _row_strip(self, server_id: int) -> Strip:
        if server_id < 0:
            return self._group_strip(server_id)
        under_cursor = server_id == self.selected_id
        key = (server_id, under_cursor)
        current = self._current(server_id)  # may drop a strip whose clock columns moved on
        strip = self._strips.get(key)
        if strip is None:
            cells = [current[column.key] for column in COLUMNS]
            base = self._style("base")
            if under_cursor:
                strip = self._line(cells, base + self._style("servertable--cursor"), under_cursor=True)
            else:
                strip = self._line(cells, base)
            self._strips[key] = strip
        return strip

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if y == 0:
            header = self._style("base") + self._style("servertable--header")
            strip = self._line([(self.heading(column), "normal") for column in COLUMNS], header)
        else:
            index = round(self.scroll_y) + y - 1
            if index == 0 and not self._order and self.filter_text and self.rows_by_id:
                message = f" no server matches “{fmt.clean(self.filter_text)}” — esc clears the filter"
                return Strip([Segment(message, self._style("base") + self._style("muted"))]).crop_extend(
                    0, width, self._style("base")
                )
            if index >= len(self._order):
                return Strip.blank(width, self._style("base"))
            strip = self._row_strip(self._order[index])
        # The first columns stay; the rest scroll sideways under them.
        fixed_width = sum(w + 2 * PADDING for w in self._widths[:FIXED])
        scroll_x = round(self.scroll_x)
        scrolled = strip.crop(fixed_width + scroll_x, fixed_width + scroll_x + max(0, width - fixed_width))
        return Strip.join([strip.crop(0, fixed_width), scrolled]).extend_cell_length(width, self._style("base"))
