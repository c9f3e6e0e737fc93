"""Issue #12, "Trust what it shows": the dashboard's status, counts, colours, sort, keys and
messages say what is true, at any width. Live tests run the real service (Redis, SQLite,
simulated SSH hosts); pictures of fixed figures use fixed_fleet."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone

from bench_dashboard import big_fleet
from fixed_fleet import NOW, FixedFleet
from textual.widgets import Footer
from tui_live import LiveFleet, live_settings, until

from fleettop.config import LoadedConfig, Settings
from fleettop.domain import Thresholds, classify
from fleettop.probe.sim import SimFleet
from fleettop.tui.app import FleetApp, dashboard_app
from fleettop.tui.screens.detail import DetailScreen
from fleettop.tui.screens.help import HelpScreen
from fleettop.tui.widgets.bars import HeaderBar, SummaryBar
from fleettop.tui.widgets.server_table import ServerTable, cells_of
from fleettop.wiring import open_service

SIZE = (160, 40)


def text(widget) -> str:
    return str(widget.render())


def toasts(app: FleetApp) -> list[str]:
    return [str(toast.render()) for toast in app.screen.query("Toast")]


def footer_keys(app: FleetApp) -> dict[str, str]:
    """Footer key -> label, of the keys that lie wholly on screen."""
    width = app.size.width
    return {
        key.key_display or key.key: key.description
        for key in app.screen.query_one(Footer).query("FooterKey")
        if key.region.width and key.region.right <= width
    }


async def loaded(pilot, app: FleetApp) -> None:
    table = app.dashboard.table
    await until(pilot, lambda: table.row_count == len(table.rows_by_id) > 0, what="the server list")


# ------------------------------------------------------------------ D1: stale by itself


async def assert_turns_stale(pilot, app: FleetApp, now: list[datetime]) -> None:
    """The rows are up; once the clock passes the stale rule (interval 3600 s: 2 h and a
    minute), the 1 s tick alone turns them stale, with nothing collected and no event."""
    table = app.dashboard.table
    summary = app.dashboard.query_one(SummaryBar)
    count = len(table.rows_by_id)
    await until(pilot, lambda: all(row.status == "up" for row in table.rows_by_id.values()), what="up rows")
    await until(pilot, lambda: f"● {count} up" in text(summary), what="the summary")
    now[0] += timedelta(hours=2, minutes=2)
    await until(pilot, lambda: all(row.status == "stale" for row in table.rows_by_id.values()), what="stale rows")
    for server_id in table.rows_by_id:
        assert table.cell_text(server_id, "status") == "◌ STALE"
        assert table.cell_class(server_id, "status") == "stale"
        assert table.cell_class(server_id, "cpu") == "muted"  # old figures, not current ones
        assert table.cell_text(server_id, "problem").startswith("no sample for 2h")
    await until(pilot, lambda: f"◌ {count} stale" in text(summary), what="stale counted in the summary")
    assert f"● 0 up  ◌ {count} stale  0 down  0 alerting" in text(summary)  # stale figures alert no one


async def test_a_paused_fleet_turns_stale_by_itself(live: LiveFleet) -> None:
    now = [datetime.now(timezone.utc)]
    app = FleetApp(live.service, config_path=live.loaded.path, clock=lambda: now[0])
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("p")  # from here on nothing is collected: no event will come
        assert await live.service.is_paused()
        await assert_turns_stale(pilot, app, now)


async def test_the_detail_screen_turns_stale_by_itself_too(live: LiveFleet) -> None:
    """Left open on a paused fleet, the detail screen said "up" for ever: it redrew only on an
    event, and none comes."""
    now = [datetime.now(timezone.utc)]
    app = FleetApp(live.service, config_path=live.loaded.path, clock=lambda: now[0])
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("p")
        await pilot.press("enter")
        await until(
            pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.detail is not None, what="details"
        )
        title = app.screen.query_one("#title")
        await until(pilot, lambda: "  up" in text(title), what="up in the title")
        now[0] += timedelta(hours=2, minutes=2)
        await until(pilot, lambda: "  stale" in text(title), what="stale in the title")
        assert "2h02m ago" in text(app.screen.query_one("#metrics"))


async def test_a_no_worker_dashboard_turns_stale_when_the_worker_is_gone(tmp_path, redis_url, redis_prefix) -> None:
    """`--no-worker` beside a worker that collected once and then died."""
    async with SimFleet(2, seed=11) as sim:
        settings = live_settings(tmp_path, redis_url, redis_prefix, sim)
        loaded_config = LoadedConfig(settings=settings, path=tmp_path / "config.yaml", exists=True)
        async with open_service(loaded_config, worker=True) as worker:  # the worker, elsewhere
            for config in sim.server_configs():
                await worker.add_server(config)
            servers = [row.server for row in await worker.list_servers()]
            await worker.collect_now(None)
            await worker.wait_collected(servers, timeout=30)
        async with open_service(loaded_config, worker=False) as service:
            now = [datetime.now(timezone.utc)]
            app = FleetApp(service, clock=lambda: now[0])
            async with app.run_test(size=SIZE) as pilot:
                await loaded(pilot, app)
                await until(pilot, lambda: "no worker" in text(app.dashboard.query_one(HeaderBar)), what="no worker")
                await assert_turns_stale(pilot, app, now)


def test_the_stale_rule_is_the_services_own() -> None:
    """ServerView.at re-derives what the service derives when it builds a row."""
    fleet = FixedFleet()
    up = next(row for row in fleet.rows if row.status == "up")
    fresh_for = timedelta(seconds=up.server.interval * 2 + 60)
    collected = up.latest.collected_at
    assert up.at(collected + fresh_for) is up
    assert up.at(collected + fresh_for + timedelta(seconds=1)).status == "stale"
    for status in ("down", "unknown", "disabled"):  # time alone changes none of these
        row = up.model_copy(update={"status": status})
        assert row.at(collected + timedelta(days=9)) is row


# ------------------------------------------------------------------ D19: the summary


async def test_summary_counts_every_server_and_says_how_many_are_off() -> None:
    fleet = FixedFleet()
    off = fleet.rows[0].model_copy(
        update={
            "server": fleet.rows[0].server.model_copy(update={"id": 99, "name": "old-1", "enabled": False}),
            "status": "disabled",
        }
    )
    fleet.rows.append(off)
    app = FleetApp(fleet, clock=lambda: NOW, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await app.refresh_counts()
        said = text(app.dashboard.query_one(SummaryBar))
        assert said.startswith("9 servers (1 off)  ● 6 up  ◌ 1 stale  ✖ 1 down  ! 1 alerting"), said
        assert app.dashboard.table.row_count == 9  # as many as the list shows


# ------------------------------------------------------------------ D12: colour = figure


def test_the_colour_follows_the_figure_as_shown() -> None:
    """89.6 shows as "90%": red at a threshold of 90. 71.6 shows as "72%": amber where
    warnings start at 72. 94.6 shows as "95%": red at 95."""
    row = FixedFleet().rows[0]
    latest = row.latest.model_copy(update={"cpu_percent": 89.6, "mem_percent": 94.6, "disk_percent": 71.6})
    thresholds = Thresholds(cpu=90, ram=95, disk=90)
    shown = row.model_copy(update={"latest": latest, "severities": classify(latest, thresholds)})
    cells = cells_of(shown, NOW)
    assert cells["cpu"] == ("90%", "critical")
    assert cells["ram"] == ("95%", "critical")
    assert cells["disk"] == ("72%", "warning")


# ------------------------------------------------------------------ D11: sort


async def test_sort_shows_the_top_marks_its_column_and_reverses() -> None:
    fleet = big_fleet(200)
    app = FleetApp(fleet, clock=lambda: NOW, live=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        table = app.dashboard.table
        await pilot.press(*["pagedown"] * 4)
        assert table.cursor_row > 50 and table.scroll_y > 0
        await pilot.press("s", "s")  # status, then cpu
        assert table.sort_mode == "cpu"
        cpus = [table.rows_by_id[i].latest.cpu_percent for i in table.shown_ids if table.rows_by_id[i].latest]
        assert table.cursor_row == 0 and table.scroll_y == 0  # the busiest, on screen
        assert table.selected.latest.cpu_percent == max(cpus)
        assert "cpu▼" in table.render_line(0).text and "server▲" not in table.render_line(0).text
        assert "sort cpu ▼" in text(app.dashboard.query_one("#info"))
        await pilot.press("S")  # reversed: the idlest first, servers without figures still last
        assert table.selected.latest.cpu_percent == min(cpus)
        assert "cpu▲" in table.render_line(0).text
        assert table.rows_by_id[table.shown_ids[-1]].latest is None
        cpu_heading = table.render_line(0).text.index("cpu▲")
        await pilot.click(ServerTable, offset=(cpu_heading, 0))  # the same heading again: back
        assert table.selected.latest.cpu_percent == max(cpus) and "cpu▼" in table.render_line(0).text


# ------------------------------------------------------------------ D7: any width


async def test_80x24_footer_shows_help_and_quit_and_the_whole_error_wraps() -> None:
    fleet = FixedFleet()
    long_error = (
        "edge-1 ([203.0.113.9]:2222): host key unknown (ssh-ed25519 SHA256:Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHE); "
        "check it and run: fleettop trust edge-1"
    )
    fleet.rows = [row.model_copy(update={"error": long_error}) if row.status == "down" else row for row in fleet.rows]
    app = FleetApp(fleet, clock=lambda: NOW, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        keys = footer_keys(app)
        assert keys.get("?") == "Help" and keys.get("q") == "Quit", keys
        summary = text(app.dashboard.query_one(SummaryBar))
        assert len(summary) <= 78 and summary.endswith("disk 58%"), summary  # whole, inside its padding
        table = app.dashboard.table
        table.move_cursor(row=table.shown_ids.index(7))  # edge-1, down
        await pilot.pause()
        info = app.dashboard.query_one("#info")
        assert info.size.height >= 2  # wrapped, not cut
        flowed = " ".join(str(info.render()).split())
        assert "fleettop trust edge-1" in flowed and "edge-1 down" in flowed
        assert info.region.bottom <= app.screen.query_one(Footer).region.y  # above the footer, on screen


async def test_120_columns_cut_no_column_to_a_stub() -> None:
    app = FleetApp(FixedFleet(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(120, 35)) as pilot:
        await pilot.pause()
        table = app.dashboard.table
        heading = table.render_line(0).text.split()
        assert heading[-1] == "next" and "pr" not in heading  # the problem column is left out, not cut
        assert table.virtual_size.width <= table.scrollable_content_region.width  # no sideways scroll
    app = FleetApp(FixedFleet(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(160, 35)) as pilot:
        await pilot.pause()
        assert app.dashboard.table.render_line(0).text.split()[-1] == "problem"  # where there is room


# ------------------------------------------------------------------ D14: pause, collect


async def test_pause_key_says_resume_while_paused_and_collect_says_nothing_runs(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await loaded(pilot, app)
        assert footer_keys(app).get("p") == "Pause"
        await pilot.press("p")
        await until(pilot, lambda: footer_keys(app).get("p") == "Resume", what="the footer to say Resume")
        palette = [command.title for command in app.get_system_commands(app.screen)]
        assert "Resume" in palette and "Pause" not in palette
        await pilot.press("c")
        await until(
            pilot, lambda: any("nothing runs until you resume" in said for said in toasts(app)), what="the hint"
        )
        app.clear_notifications()
        await pilot.press("r")
        await until(
            pilot, lambda: any("nothing runs until you resume" in said for said in toasts(app)), what="the hint"
        )
        await pilot.press("p")
        assert not await live.service.is_paused()
        await until(pilot, lambda: footer_keys(app).get("p") == "Pause", what="the footer to say Pause")


async def test_collect_with_no_worker_says_nothing_will_run(tmp_path, redis_url, redis_prefix) -> None:
    async with SimFleet(1, seed=5) as sim:
        settings = live_settings(tmp_path, redis_url, redis_prefix, sim)
        loaded_config = LoadedConfig(settings=settings, path=tmp_path / "config.yaml", exists=True)
        async with open_service(loaded_config, worker=False) as service:
            await service.add_server(sim.server_configs()[0])
            app = FleetApp(service)
            async with app.run_test(size=SIZE, notifications=True) as pilot:
                await loaded(pilot, app)
                await until(pilot, lambda: "no worker" in text(app.dashboard.query_one(HeaderBar)), what="no worker")
                await pilot.press("c")
                await until(pilot, lambda: any("no worker is running" in said for said in toasts(app)), what="the hint")


# ------------------------------------------------------------------ D24: empty results


async def test_a_filter_without_match_says_so_and_keys_say_why_nothing_happens() -> None:
    app = FleetApp(FixedFleet(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 24), notifications=True) as pilot:
        await pilot.pause()
        table = app.dashboard.table
        await pilot.press("slash", *"zzz", "enter")
        assert table.row_count == 0 and table.has_focus
        assert "no server matches “zzz” — esc clears the filter" in table.render_line(1).text
        assert "no server matches the filter" in text(app.dashboard.query_one("#info"))
        for key in ("enter", "e", "d", "r"):
            app.clear_notifications()
            await pilot.press(key)
            await until(
                pilot, lambda: any("no server matches the filter “zzz”" in said for said in toasts(app)), what=key
            )
            assert app.screen is app.dashboard  # nothing opened


async def test_the_first_run_note_leaves_the_bottom_lines_readable() -> None:
    app = FleetApp(
        FixedFleet(),
        clock=lambda: NOW,
        live=False,
        config_note="no config file: defaults in use; create /x/config.yaml to change them",
    )
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await until(pilot, lambda: toasts(app), what="the note")
        [toast] = app.screen.query("Toast")
        await pilot.pause(0.3)
        info = app.dashboard.query_one("#info")
        assert toast.region.bottom <= info.region.y  # above the line under the list
        assert app._notifications and all(n.timeout <= 6 for n in app._notifications)


# ------------------------------------------------------------------ keys of htop and k9s


async def test_ctrl_c_and_f10_quit_f1_helps() -> None:
    for key in ("ctrl+c", "f10"):
        app = FleetApp(FixedFleet(), clock=lambda: NOW, live=False)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await pilot.pause()
            await pilot.press(key)
            await pilot.pause()
            assert not app.is_running, key
            assert not any("to quit" in said for said in toasts(app))
        assert app.return_code == 0
    app = FleetApp(FixedFleet(), clock=lambda: NOW, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)


# ------------------------------------------------------------------ --demo


async def test_demo_says_so_in_the_header(tmp_path) -> None:
    args = argparse.Namespace(no_worker=False, demo=3, listen=None)
    assert dashboard_app(
        args, LoadedConfig(settings=Settings(data_dir=tmp_path), path=tmp_path / "c.yaml", exists=False)
    ).demo
    for width, said in ((120, "changes are thrown away"), (80, "DEMO")):
        app = FleetApp(FixedFleet(), clock=lambda: NOW, live=False, demo=True)
        async with app.run_test(size=(width, 24)) as pilot:
            await pilot.pause()
            header = text(app.dashboard.query_one(HeaderBar))
            assert said in header and header.rstrip().endswith("09:26:53"), header
    app = FleetApp(FixedFleet(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(120, 24)) as pilot:
        await pilot.pause()
        assert "DEMO" not in text(app.dashboard.query_one(HeaderBar))


def test_a_redis_outage_reads_as_what_it_means():
    """D2: `c` with Redis gone said redis-py's raw 'Error 111 connecting to …/redis.sock'."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from fleettop.tui.app import failure_text

    said = failure_text(RedisConnectionError("Error 111 connecting to unix:///x/redis.sock. Connection refused."))
    assert said == "Redis is not answering: try again in a moment"
    assert failure_text(ValueError("no server named 'x'")) == "no server named 'x'"
