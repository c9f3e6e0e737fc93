"""The one-line bars above the server list: title and health, fleet summary, queue counts.

They are fed prepared data by the screen (never query anything themselves) and
use Content markup with theme variables, so they follow dark and light themes.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from textual.content import Content
from textual.widgets import Static

from fleettop.domain import FleetAggregate, QueueStats
from fleettop.tui import format as fmt
from fleettop.views import Health

WORKER_LABELS = {
    "running": "[$success]●[/] worker running",
    "paused": "[$warning]‖[/] [b $warning]worker paused[/]",
    "none": "[$text-muted]○ no worker[/]",
    "unknown": "[$text-muted]? worker unknown[/]",  # Redis, where workers leave their heartbeats, is down
}

DEMO_MARK = "[b reverse $warning] DEMO [/]"
DEMO_SAID = DEMO_MARK + " [$warning]changes are thrown away[/]"


def _ok(flag: bool | None) -> str:
    if flag is None:
        return "[$text-muted]…[/]"
    return "[$success]✓[/]" if flag else "[b $error]✗[/]"


class _Bar(Static):
    """A one-line bar repainted only when its text changes, and without a layout pass: its
    size never depends on its text (one line, the screen's width). The count refresh and the
    clock would otherwise re-lay out and redraw the whole screen every second."""

    _shown: object = None

    def _put(self, key: object, build: Any) -> None:
        if key != self._shown:
            self._shown = key
            self.update(build(), layout=False)


class HeaderBar(_Bar):
    """fleettop · worker state · Redis and database health · the clock."""

    def __init__(self, *, demo: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.health: Health | None = None  # None: not read yet
        self.now: datetime | None = None
        self.demo = demo  # --demo: nothing done here is kept, and the header says so

    def show(self, *, health: Health | None = None, now: datetime | None = None) -> None:
        if health is not None:
            self.health = health
        if now is not None:
            self.now = now
        self._refresh_content()

    def _refresh_content(self) -> None:
        key = (self.health, self.now, self.size.width)
        self._put(key, self._content)

    def _content(self) -> Content:
        health = self.health
        worker = WORKER_LABELS[health.worker] if health else "[$text-muted]worker …[/]"
        clock = self.now.strftime("%Y-%m-%d %H:%M:%S") if self.now else ""
        status = (
            f"{worker}   redis {_ok(health.redis if health else None)}  db {_ok(health.database if health else None)}"
        )
        left = Content.from_markup(f"[b]fleettop[/]  {status}")
        if self.demo:  # the whole warning where it fits beside the clock, else the marker only
            for mark in (DEMO_SAID, DEMO_MARK):
                left = Content.from_markup(f"[b]fleettop[/]  {mark}  {status}")
                if left.cell_length + len(clock) + 3 <= self.size.width:
                    break
        return Content.assemble(left, " " * max(1, self.size.width - left.cell_length - len(clock) - 2), clock)

    def on_resize(self) -> None:
        self._refresh_content()


class SummaryBar(_Bar):
    """Servers in all (and how many are off), how many up, stale, new, down and alerting --
    counted from the rows on screen, so they always agree with the list -- and the fleet's
    average CPU, RAM and disk."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts: Counter[str] | None = None
        self.aggregate: FleetAggregate | None = None

    def show(self, *, counts: Counter[str] | None = None, aggregate: FleetAggregate | None = None) -> None:
        if counts is not None:
            self.counts = counts
        if aggregate is not None:
            self.aggregate = aggregate
        if self.counts is None:
            return
        self._refresh_content()

    def _refresh_content(self) -> None:
        c, a = self.counts, self.aggregate
        if c is None:
            return
        total = c.total() - c["alerting"] - c["firing"]
        off = f" [$text-muted]({c['disabled']} off)[/]" if c["disabled"] else ""
        # (markup, shown on a narrow screen too): "0 down" is news while there is room for it
        parts = [
            (f"[b]{total}[/] server{'' if total == 1 else 's'}{off}", True),
            (f"[$success]● {c['up']} up[/]", True),
        ]
        if c["stale"]:
            parts.append((f"[b $warning]◌ {c['stale']} stale[/]", True))
        if c["unknown"]:
            parts.append((f"[$text-muted]? {c['unknown']} new[/]", True))
        for key, mark in (("down", "✖"), ("alerting", "!")):
            if c[key]:
                parts.append((f"[b $error]{mark} {c[key]} {key}[/]", True))
            else:
                parts.append((f"[$text-muted]0 {key}[/]", False))
        if c["firing"]:  # alerts (fleettop.alerting): shown while there are any (! lists them)
            parts.append((f"[b $error]⚑ {c['firing']} firing[/]", True))
        averages = []
        if a is not None:
            averages = [
                f"cpu [b]{fmt.percent(a.avg_cpu)}[/]",
                f"ram [b]{fmt.percent(a.avg_ram)}[/]",
                f"disk [b]{fmt.percent(a.avg_disk)}[/]",
            ]
        wide = "  ".join(part for part, _ in parts) + (
            "  [$text-muted]│[/] avg " + "  ".join(averages) if averages else ""
        )
        markup = wide
        if Content.from_markup(wide).cell_length > self.size.width - 2:  # narrow: no zeros, tighter
            markup = " ".join(part for part, narrow in parts if narrow) + (
                " [$text-muted]│[/] " + " ".join(averages) if averages else ""
            )
        self._put(markup, lambda: Content.from_markup(markup))

    def on_resize(self) -> None:
        self._refresh_content()


class QueueBar(_Bar):
    """Live queue counts and the pause state; stats=None: they cannot be read (Redis is down)."""

    FIELDS = ("waiting", "active", "delayed", "scheduled", "completed", "failed")

    def show(self, stats: QueueStats | None) -> None:
        if stats is None:  # not the last figures, which would pass for current ones
            markup = "queue  " + "  ".join(f"{name} [$text-muted]–[/]" for name in self.FIELDS)
            self._put(markup, lambda: Content.from_markup(markup))
            self.set_class(False, "-paused")
            return
        parts = []
        for name in self.FIELDS:
            value = getattr(stats, name)
            colour = "$error" if name == "failed" and value else "$accent" if name == "active" and value else ""
            number = f"[b {colour}]{value}[/]" if colour else f"[b]{value}[/]"
            parts.append(f"{name} {number}")
        paused = "  [b reverse $warning] PAUSED [/]" if stats.paused else ""
        markup = "queue  " + "  ".join(parts) + paused
        self._put(markup, lambda: Content.from_markup(markup))
        self.set_class(stats.paused, "-paused")
