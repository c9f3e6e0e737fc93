"""A time-series chart in braille dots: each cell is 2 x 4 dots, so a 60 x 5 chart has 120
columns of 20 levels.

The average is a line, each dot column joined to the one before; behind it, dimmer, the
band from the points' minimum to their maximum (a bucket's spread stays visible, a spike
is never averaged away). Time runs left to right by the clock: a point holds until the
next, and a gap in the history (GAP_SPACINGS usual spacings) is a gap in the chart. The
threshold is a dotted line; a cell with a dot at or over it is drawn in the alert style.
`render_chart` is pure; `Chart` shows it.
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
# What each cell is drawn as: empty, the average line, only the min..max band, a dot at or
# over the threshold, the threshold only.
EMPTY, DATA, SPREAD, OVER, THRESHOLD = "", "data", "spread", "over", "threshold"
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
    SPREAD, OVER, THRESHOLD."""
    if width <= 0 or height <= 0:
        return []
    columns, levels = width * 2, height * 4
    span = max(1, until - since)

    def level(value: float) -> int:
        return max(0, min(levels - 1, round(value / scale.top * (levels - 1)))) if scale.top > 0 else 0

    band: list[tuple[int, int] | None] = [None] * columns  # (lowest, highest) level of each column
    line: list[tuple[int, int] | None] = [None] * columns  # the average's, joined to the column before
    ordered = sorted(points, key=lambda point: point.at)
    gaps = sorted(b.at - a.at for a, b in zip(ordered, ordered[1:]))
    spacing = gaps[len(gaps) // 2] if gaps else span
    for index, point in enumerate(ordered):
        # A point holds until the next one, unless that is far (a gap in the history).
        following = ordered[index + 1].at if index + 1 < len(ordered) else point.at + spacing
        ends = following if following - point.at <= GAP_SPACINGS * spacing else point.at + spacing
        first = (point.at - since) * columns // span
        last = max(first, (ends - since) * columns // span - 1)
        bottom, top, middle = level(point.min), level(point.max), level(point.avg)
        for column in range(max(0, first), min(columns - 1, last) + 1):
            band[column] = _widen(band[column], bottom, top)
            line[column] = _widen(line[column], middle, middle)
    # Join each column of the line to the one before it, so consecutive points draw as a line.
    previous: tuple[int, int] | None = None
    for column, own in enumerate(line):
        if own is not None and previous is not None:
            if previous[1] < own[0]:  # rising: reach down to the one before
                line[column] = (previous[1] + 1, own[1])
            elif previous[0] > own[1]:  # falling: reach up to it
                line[column] = (own[0], previous[0] - 1)
        previous = own

    threshold_level = level(threshold) if threshold is not None and threshold <= scale.top else None
    rows: list[list[tuple[str, str]]] = []
    for row in range(height):
        cells: list[tuple[str, str]] = []
        for cell in range(width):
            bits, on_line, on_band, over, dotted = 0, False, False, False, False
            for dot_row in range(4):
                dot_level = (height - 1 - row) * 4 + (3 - dot_row)
                for dot_column in range(2):
                    column = cell * 2 + dot_column
                    in_line, in_band = _holds(line[column], dot_level), _holds(band[column], dot_level)
                    if in_line or in_band:
                        bits |= DOT_BITS[dot_row][dot_column]
                        on_line, on_band = on_line or in_line, on_band or in_band
                        over = over or (threshold_level is not None and dot_level >= threshold_level)
                    elif dot_level == threshold_level and column % 2 == 0:
                        bits |= DOT_BITS[dot_row][dot_column]
                        dotted = True
            kind = OVER if over else DATA if on_line else SPREAD if on_band else THRESHOLD if dotted else EMPTY
            cells.append((chr(BRAILLE + bits) if bits else " ", kind))
        rows.append(cells)
    return rows


def _widen(seen: tuple[int, int] | None, low: int, high: int) -> tuple[int, int]:
    return (low, high) if seen is None else (min(seen[0], low), max(seen[1], high))


def _holds(levels: tuple[int, int] | None, level: int) -> bool:
    return levels is not None and levels[0] <= level <= levels[1]


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
        styles = {kind: self._style(kind) for kind in (EMPTY, DATA, SPREAD, OVER, THRESHOLD)}
        return Strip([Segment(char, styles[kind]) for char, kind in self._rows[y]]).simplify()

    def _style(self, kind: str) -> Style:
        """The cell's colour over the widget's own background (a bare colour would show the
        terminal's default background behind the chart)."""
        variables = self.app.theme_variables if self.is_mounted else {}
        colours = {
            DATA: variables.get("primary", "blue"),
            SPREAD: variables.get("primary", "blue"),
            OVER: variables.get("error", "red"),
            THRESHOLD: variables.get("warning", "yellow"),
        }
        colour = colours.get(kind)
        base = self.rich_style
        return base + Style(color=colour, dim=kind in (SPREAD, THRESHOLD)) if colour else base
