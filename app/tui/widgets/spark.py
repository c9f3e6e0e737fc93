"""A one-line sparkline on a fixed scale.

Textual's Sparkline stretches the data between its own minimum and maximum, so
a disk steady at 93 % looks like a cliff. Percentages are drawn here against
0-100, each cell showing the highest value of its time slice, so short spikes
survive the squeeze. Load has no fixed top: it is drawn against its peak but
never against less than `floor` (1.0, one busy CPU), so a steady 0.25 stays low.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.reactive import reactive
from textual.widget import Widget

BARS = " ▁▂▃▄▅▆▇█"


def spark(values: Sequence[float], width: int, ceiling: float | None, floor: float = 1.0) -> str:
    """`ceiling`: the value drawn full height; None scales to max(peak, floor)."""
    if not values or width <= 0:
        return ""
    top = ceiling if ceiling else max(max(values), floor)
    cells = min(width, len(values))
    line = []
    for cell in range(cells):
        chunk = values[cell * len(values) // cells : (cell + 1) * len(values) // cells] or values[-1:]
        level = max(0.0, min(1.0, max(chunk) / top))
        line.append(BARS[max(1, round(level * (len(BARS) - 1)))])
    return "".join(line)


class Spark(Widget):
    DEFAULT_CSS = "Spark { height: 1; }"

    values: reactive[tuple[float, ...]] = reactive(tuple)

    def __init__(self, *, ceiling: float | None = 100.0, id: str | None = None) -> None:
        super().__init__(id=id)
        self.ceiling = ceiling

    def render(self) -> str:
        return spark(self.values, self.size.width, self.ceiling)
