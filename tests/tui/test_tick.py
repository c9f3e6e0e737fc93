"""The clock tick and a full update: they format the visible lines only; every other line is
right when shown or read."""

from __future__ import annotations

from datetime import timedelta

from bench_dashboard import big_fleet, changed
from fixed_fleet import NOW
from textual._context import active_app

from fleettop.tui import format as fmt
from fleettop.tui.app import FleetApp
from fleettop.views import Health

SIZE = (160, 30)


async def test_tick_advances_the_visible_lines_and_the_rest_when_shown() -> None:
    fleet = big_fleet(300)
    now = [NOW]
    app = FleetApp(fleet, clock=lambda: now[0], live=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.dashboard.table
        assert table.row_count == 300
        top, bottom = table.shown_ids[0], table.shown_ids[-1]
        rows = table.rows_by_id
        # Read once: an off-screen line's cells are made when it is first read or drawn.
        before = {server_id: table.cell_text(server_id, "age") for server_id in (top, bottom)}

        now[0] = NOW + timedelta(minutes=2)  # less than the stale rule: no status changes
        calls = []
        import fleettop.tui.widgets.server_table as module

        original = module.cells_of
        module.cells_of = lambda row, at: calls.append(row.server.id) or original(row, at)
        try:
            table.tick()
        finally:
            module.cells_of = original
        assert len(calls) < 40  # the visible lines, not the 300
        assert top in calls and bottom not in calls
        assert table._cells[top]["age"][0] != before[top]
        assert table._cells[bottom]["age"][0] == before[bottom]  # not advanced yet...

        # ...but right as soon as it is read or drawn
        expected = fmt.age(rows[bottom].last_collected_at, now[0])
        assert table.cell_text(bottom, "age") == expected
        table.move_cursor(row=table.row_count - 1)
        await pilot.pause()
        line = table.render_line(table.scrollable_content_region.height - 1)
        assert expected in line.text or table.cell_text(table.selected_id, "age") == expected
        for server_id in table.shown_ids[-20:]:
            assert table.cell_text(server_id, "age") == fmt.age(rows[server_id].last_collected_at, now[0])


async def test_every_row_changed_formats_the_visible_lines_and_the_rest_when_shown() -> None:
    fleet = big_fleet(300)
    app = FleetApp(fleet, clock=lambda: NOW, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.dashboard.table
        bottom = table.shown_ids[-1]
        rows = [changed(row, 7) for row in await fleet.list_servers()]
        calls = []
        import fleettop.tui.widgets.server_table as module

        original = module.cells_of
        module.cells_of = lambda row, at: calls.append(row.server.id) or original(row, at)
        try:
            app.dashboard.show_rows(rows)
        finally:
            module.cells_of = original
        assert 0 < len(calls) < 40  # the visible lines, not the 300
        new_cpu = next(row for row in rows if row.server.id == bottom).latest.cpu_percent
        assert table.cell_text(bottom, "cpu") == fmt.percent(new_cpu)
        table.move_cursor(row=table.row_count - 1)
        await pilot.pause()
        assert fmt.percent(new_cpu) in table.render_line(table.scrollable_content_region.height - 1).text


async def test_the_count_refresh_rests_while_nothing_happens() -> None:
    import time

    import fleettop.tui.app as module

    fleet = big_fleet(50)
    app = FleetApp(fleet, clock=lambda: NOW, live=False)

    def age(seconds: float) -> None:
        """As if the last count refresh and the last event were `seconds` ago."""
        app._counts_at = app._last_event_at = time.monotonic() - seconds

    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await app.refresh_counts()
        assert app._healthy
        age(module.ACTIVE_WINDOW + 0.5)
        assert not app._counts_needed()  # no event lately, healthy, nothing due
        app._last_event_at = time.monotonic()
        assert app._counts_needed()  # an event just arrived
        age(module.IDLE_COUNTS_INTERVAL + 0.5)
        assert app._counts_needed()  # idle, but not for ever
        original = fleet.health

        async def down():
            return Health(redis=False, database=True, worker="running")

        fleet.health = down
        await app.refresh_counts()
        age(module.ACTIVE_WINDOW + 0.5)
        assert app._counts_needed()  # unhealthy: every tick, until it is back
        fleet.health = original
        await app.refresh_counts()
        age(module.ACTIVE_WINDOW + 0.5)
        assert not app._counts_needed()


async def test_a_read_returning_after_the_app_closed_its_screens_is_dropped() -> None:
    """A count refresh or a tick in flight when the app quits lands on a dashboard that is gone:
    dropped quietly (it once raised StopIteration from inside a worker: a traceback at exit)."""
    app = FleetApp(big_fleet(3), clock=lambda: NOW, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
    assert not app.screen_stack
    token = active_app.set(app)  # as in the app's own workers, still winding down
    try:
        app.dashboard.show_health(Health(redis=True, database=True, worker="running"))
        app._counts_tick()  # reads the list's rows to see whether the counts are due
    finally:
        active_app.reset(token)
