"""The still pictures of fleettop: each a fixed fleet, a terminal size, a theme and keys.

Shared by the snapshot tests (test_snapshots.py) and the README screenshots
(make_screenshots.py), so the pictures in the README are the ones under test.
"""

from __future__ import annotations

from dataclasses import dataclass

from fixed_fleet import NOW, FixedFleet

from fleettop.tui.app import FleetApp


@dataclass(frozen=True)
class Scene:
    size: tuple[int, int]
    keys: tuple[str, ...] = ()
    theme: str = "textual-dark"
    alerts: bool = False  # db-2 with alerts firing
    tagged: bool = False  # the servers carry tags (fixed_fleet.TAGS)

    def app(self) -> FleetApp:
        app = FleetApp(FixedFleet(alerts=self.alerts, tagged=self.tagged), clock=lambda: NOW, live=False)
        app.theme = self.theme
        return app


SCENES = {
    # normal, warning, critical, stale and unreachable servers; the cursor on the stale one
    "dashboard": Scene((150, 20)),
    "dashboard-80x24": Scene((80, 24), ("down", "down", "down", "down", "down")),
    "dashboard-light": Scene((150, 20), theme="textual-light"),
    "dashboard-200x60": Scene((200, 60), ("s",)),
    "detail": Scene((110, 42), ("down",) * 7 + ("enter",)),
    # db-2: 7 days of charts (5-minute buckets), its root filling up ("full in ..."), thresholds crossed
    "detail-history-7d": Scene((100, 60), ("down",) * 4 + ("enter", "3")),
    "detail-80x24": Scene((80, 24), ("down",) * 3 + ("enter", "5")),
    "form-error": Scene((90, 26), ("a", *"web 1", "tab", *"db_1.internal", "tab")),
    "queue": Scene((110, 24), ("j",)),
    "help": Scene((90, 26), ("question_mark",)),
    # alerts: the marker and firing count on the dashboard, the alerts screen, db-2's detail
    "alerts-dashboard-80x24": Scene((80, 24), alerts=True),
    "alerts-screen": Scene((100, 24), ("exclamation_mark",), alerts=True),
    "alerts-detail": Scene((110, 50), ("down",) * 4 + ("enter",), alerts=True),
    # grouped by tag, db folded (its summary line under the cursor), at the smallest size
    "dashboard-by-tag": Scene((80, 24), ("g", "home", "enter"), tagged=True),
}
