"""A time-series chart in braille dots: each cell is 2 x 4 dots, so a 60 x 5 chart has 120
columns of 20 levels.

Each dot column spans the range from its points' minimum to their maximum (a bucket's
spread stays visible, a spike is never averaged away) and joins the previous column,
so raw samples draw as a line. Time runs left to right by the clock: a point holds
until the next, and a gap in the history (GAP_SPACINGS usual spacings) is a gap in the chart. The threshold is a dotted line; a cell with a dot at or
over it is drawn in the alert style. `render_chart` is pure; `Chart` shows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from fleettop.rollup import Point

BRAILLE = 0x2800
# The bit of each dot, by its row from the top of the cell (0-3) and its column (0-1).
DOT_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
# What each cell is drawn as: empty, data, data at or over the threshold, threshold only.
EMPTY, DATA, OVER, THRESHOLD = "", "data", "over", "threshold"
GAP_SPACINGS = 3  # points further apart than this many usual spacings leave a gap between them


@dataclass(frozen=True)
class Scale:
    top: float  # the value at the top row of dots

    @classmethod
    def for_values(cls, ceiling: float | None, peak: float, floor: float = 1.0) -> Scale:
        """A percentage's 0-100; otherwise the peak, never less than `floor` (one busy CPU, one byte a second)."""
        return cls(ceiling if ceiling else max(peak, floor))


def render_chart(
    points: Sequence[Point],
    since: int,
    until: int,
    width: int,
    height: int,
    scale: Scale,
    threshold: float | None = None,
) -> list[list[tuple[str, str]]]:
    """`height` rows of `width` cells, each (character, kind): kind is one of EMPTY, DATA,
    OVER, THRESHOLD."""
    if width <= 0 or height <= 0:
        return []
    columns, levels = width * 2, height * 4
    span = max(1, until - since)

    def level(value: float) -> int:
        return max(0, min(levels - 1, round(value / scale.top * (levels - 1)))) if scale.top > 0 else 0

    low: list[int | None] = [None] * columns
    high: list[int | None] = [None] * columns
    ordered = sorted(points, key=lambda point: point.at)
    gaps = sorted(b.at - a.at for a, b in zip(ordered, ordered[1:]))
    spacing = gaps[len(gaps) // 2] if gaps else span
    for index, point in enumerate(ordered):
        # A point holds until the next one, unless that is far (a gap in the history).
        following = ordered[index + 1].at if index + 1 < len(ordered) else point.at + spacing
        ends = following if following - point.at <= GAP_SPACINGS * spacing else point.at + spacing
        first = (point.at - since) * columns // span
        last = max(first, (ends - since) * columns // span - 1)
        bottom, top = level(point.min), level(point.max)
        for column in range(max(0, first), min(columns - 1, last) + 1):
            seen_low, seen_high = low[column], high[column]
            low[column] = bottom if seen_low is None else min(seen_low, bottom)
            high[column] = top if seen_high is None else max(seen_high, top)
    # Join each column to the one before it, so consecutive samples draw as a line.
    previous: tuple[int, int] | None = None
    for column in range(columns):
        seen_low, seen_high = low[column], high[column]
        if seen_low is None or seen_high is None:
            previous = None
            continue
        if previous is not None:
            if previous[1] < seen_low:  # rising: reach down to the one before
                low[column] = previous[1] + 1
            elif previous[0] > seen_high:  # falling: reach up to it
                high[column] = previous[0] - 1
        previous = (seen_low, seen_high)

    threshold_level = level(threshold) if threshold is not None and threshold <= scale.top else None
    rows: list[list[tuple[str, str]]] = []
    for row in range(height):
        cells: list[tuple[str, str]] = []
        for cell in range(width):
            bits, kind = 0, EMPTY
            for dot_row in range(4):
                dot_level = (height - 1 - row) * 4 + (3 - dot_row)
                for dot_column in range(2):
                    column = cell * 2 + dot_column
                    drawn_low, drawn_high = low[column], high[column]
                    if drawn_low is not None and drawn_high is not None and drawn_low <= dot_level <= drawn_high:
                        bits |= DOT_BITS[dot_row][dot_column]
                        over = threshold_level is not None and dot_level >= threshold_level
                        kind = OVER if over or kind == OVER else DATA
                    elif dot_level == threshold_level and column % 2 == 0:
                        bits |= DOT_BITS[dot_row][dot_column]
                        kind = kind or THRESHOLD
            cells.append((chr(BRAILLE + bits) if bits else " ", kind))
        rows.append(cells)
    return rows


class Chart(Widget):
    """A braille chart of one series, as wide as the widget; set `plot` to draw."""

    DEFAULT_CSS = "Chart { height: 4; }"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._data: tuple[Sequence[Point], int, int, Scale, float | None] | None = None
        self._rows: list[list[tuple[str, str]]] = []

    def plot(self, points: Sequence[Point], since: int, until: int, scale: Scale, threshold: float | None) -> None:
        self._data = (points, since, until, scale, threshold)
        self._rows = []
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width, height = self.size.width, self.size.height
        if self._data is None or width <= 0:
            return Strip.blank(width)
        if len(self._rows) != height or (self._rows and len(self._rows[0]) != width):
            points, since, until, scale, threshold = self._data
            self._rows = render_chart(points, since, until, width, height, scale, threshold)
        if y >= len(self._rows):
            return Strip.blank(width)
        styles = {kind: self._style(kind) for kind in (EMPTY, DATA, OVER, THRESHOLD)}
        return Strip([Segment(char, styles[kind]) for char, kind in self._rows[y]]).simplify()

    def _style(self, kind: str) -> Style:
        """The cell's colour over the widget's own background (a bare colour would show the
        terminal's default background behind the chart)."""
        variables = self.app.theme_variables if self.is_mounted else {}
        colours = {
            DATA: variables.get("primary", "blue"),
            OVER: variables.get("error", "red"),
            THRESHOLD: variables.get("warning", "yellow"),
        }
        colour = colours.get(kind)
        base = self.rich_style
        return base + Style(color=colour, dim=kind == THRESHOLD) if colour else base
