"""Text from hosts and users reaches the screen as plain text: no Rich markup, no escapes."""

from __future__ import annotations

import pytest
from fixed_fleet import NOW, FixedFleet

from fleettop.tui import format as fmt
from fleettop.tui.app import FleetApp
from fleettop.tui.screens.detail import DetailScreen

HOSTILE = "[bold red]pwned[/] \x1b[2J\x1b]0;title\x07 done\r\nsecond line\x9b31m"


def test_clean_removes_every_control_character() -> None:
    cleaned = fmt.clean(HOSTILE)
    assert not any(ord(char) < 32 or 0x7F <= ord(char) <= 0x9F for char in cleaned)
    assert "[bold red]pwned[/]" in cleaned and "second line" in cleaned


def test_safe_is_plain_text() -> None:
    text = fmt.safe("[link=http://evil]x[/link]")
    assert text.plain == "[link=http://evil]x[/link]" and not text.spans


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "–"), (0, "0B/s"), (999, "999B/s"), (1500, "1.5K/s"), (52_000_000, "50M/s")],
)
def test_rate(value, expected) -> None:
    assert fmt.rate(value) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"), [(5, "5s"), (600, "10m"), (3 * 3600 + 300, "3h05m"), (90000, "1d01h")]
)
def test_duration(seconds, expected) -> None:
    assert fmt.duration(seconds) == expected


async def test_hostile_error_shows_literally_everywhere() -> None:
    fleet = FixedFleet()
    down = next(row for row in fleet.rows if row.status == "down")
    down.error = HOSTILE
    app = FleetApp(fleet, clock=lambda: NOW, live=False)
    async with app.run_test(size=(200, 30)) as pilot:
        await pilot.pause()
        table = app.dashboard.table
        problem = table.cell_text(down.server.id, "problem")
        assert "[bold red]pwned[/]" in problem and "\x1b" not in problem and "\n" not in problem
        table.move_cursor(row=table.shown_ids.index(down.server.id))
        await pilot.pause()
        info = str(app.dashboard.query_one("#info").render())
        assert "[bold red]pwned[/]" in info and "\x1b" not in info
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        title = str(app.screen.query_one("#title").render())
        assert "[bold red]pwned[/]" in title and "\x1b" not in title
        runs = app.screen.query_one("#runs")
        assert "[bold red]pwned[/]" in str(runs.get_row_at(0)[-1])
