"""Every dashboard key, driven with Pilot against the real service and simulated hosts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from textual import events
from tui_live import HOSTS, LiveFleet, live_settings, settled, until

from fleettop import config
from fleettop.config import LoadedConfig, ServerConfig
from fleettop.domain import severity
from fleettop.probe.sim import SimFleet
from fleettop.queue.scheduler import CLEAN_EVERY_S
from fleettop.tui.app import FleetApp, dashboard_app
from fleettop.tui.screens.confirm import ConfirmScreen
from fleettop.tui.screens.dashboard import DashboardScreen
from fleettop.tui.screens.detail import DetailScreen
from fleettop.tui.screens.form import ServerForm
from fleettop.tui.screens.help import HelpScreen
from fleettop.tui.screens.queue import QueueScreen
from fleettop.tui.widgets.bars import HeaderBar, QueueBar
from fleettop.tui.widgets.server_table import COLUMNS, ServerTable
from fleettop.wiring import open_service

SIZE = (160, 40)


def table(app: FleetApp) -> ServerTable:
    return app.dashboard.table


def sample_times(app: FleetApp) -> dict[str, object]:
    return {row.server.name: row.last_collected_at for row in table(app).rows_by_id.values()}


async def loaded(pilot, app: FleetApp) -> None:
    await until(pilot, lambda: table(app).row_count == len(table(app).rows_by_id) > 0, what="the server list")


async def test_list_shows_every_server_with_figures(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        grid = table(app)
        assert grid.row_count == HOSTS
        for server_id, row in grid.rows_by_id.items():
            assert row.status == "up"
            assert grid.cell_text(server_id, "cpu").endswith("%")
            assert grid.cell_class(server_id, "status") == "up"
        await until(pilot, lambda: "worker running" in str(app.dashboard.query_one(HeaderBar).render()), what="header")


async def test_list_has_the_focus_once_loaded(live: LiveFleet) -> None:
    """The service takes a moment to open; the arrows must work as soon as the list is there."""

    @contextlib.asynccontextmanager
    async def slow_open():
        await asyncio.sleep(0.5)
        yield live.service

    app = FleetApp(open_service=slow_open)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        assert table(app).has_focus
        await pilot.press("down")
        assert table(app).cursor_row == 1


async def test_c_collects_every_server_again(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        before = sample_times(app)
        await pilot.press("c")
        await until(
            pilot,
            lambda: all(sample_times(app)[name] != at for name, at in before.items()),
            what="every row to repaint",
        )


async def test_r_collects_only_the_selected_server(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("down")
        selected = table(app).selected.server.name
        before = sample_times(app)
        await pilot.press("r")
        await until(pilot, lambda: sample_times(app)[selected] != before[selected], what="the selected row")
        await pilot.pause(1.0)
        after = sample_times(app)
        assert [name for name in before if after[name] != before[name]] == [selected]


async def test_p_pauses_and_resumes(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("p")
        assert await live.service.is_paused()
        bar = app.dashboard.query_one(QueueBar)
        await until(pilot, lambda: bar.has_class("-paused") and "PAUSED" in str(bar.render()), what="the paused bar")
        await until(pilot, lambda: "worker paused" in str(app.dashboard.query_one(HeaderBar).render()), what="header")
        await pilot.press("p")
        assert not await live.service.is_paused()
        await until(pilot, lambda: not bar.has_class("-paused"), what="the bar to clear")


async def test_unreachable_server_is_unmistakable(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        name = live.sim.hosts[0][0]
        await live.sim.stop(name)
        server_id = next(i for i, row in table(app).rows_by_id.items() if row.server.name == name)
        await live.service.collect_now([name])
        await until(pilot, lambda: table(app).rows_by_id[server_id].status == "down", what="the row to go down")
        grid = table(app)
        assert grid.cell_class(server_id, "status") == "down"
        assert grid.cell_text(server_id, "status") == "✖ DOWN"
        assert grid.cell_class(server_id, "name") == "down"
        assert grid.cell_class(server_id, "cpu") == "muted"
        assert name in grid.cell_text(server_id, "problem")  # the one-line error names the host


async def test_cells_take_the_class_of_their_threshold(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        row = next(iter(table(app).rows_by_id.values()))
        latest = row.latest
        # Thresholds placed around this server's figures: CPU past its limit, RAM at 90 % of it.
        config = ServerConfig(
            name=row.server.name,
            host=row.server.host,
            port=row.server.port,
            username=row.server.username,
            auth=row.server.auth,
            key_file=row.server.key_file,
            thresholds={"cpu": 0, "ram": min(100.0, latest.mem_percent / 0.9), "disk": 100},
        )
        await live.service.edit_server(row.server.name, config)
        grid = table(app)
        await until(pilot, lambda: grid.cell_class(row.server.id, "cpu") == "critical", what="cpu critical")
        shown = grid.rows_by_id[row.server.id].latest
        assert (
            grid.cell_class(row.server.id, "ram")
            == severity(shown.mem_percent, config.thresholds.ram).value
            == "warning"
        )
        assert grid.cell_class(row.server.id, "disk") == "normal"
        assert grid.cell_class(row.server.id, "swap") == "normal"


async def test_enter_opens_details_and_escape_returns(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        name = table(app).selected.server.name
        await pilot.press("enter")
        await until(
            pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.detail is not None, what="detail"
        )
        screen = app.screen
        assert screen.server_name == name
        assert name in str(screen.query_one("#title").render())
        assert screen.query_one("#runs").row_count >= 1
        assert screen.query_one("#mounts").row_count >= 1
        cpu = screen.detail.history.series[0]
        assert cpu.metric == "cpu" and cpu.points and "min " in str(screen.query_one("#chart-head-0").render())
        runs_before = len(screen.detail.runs)
        await pilot.press("r")  # collect now, from the detail screen: a new run appears live
        await until(pilot, lambda: len(screen.detail.runs) > runs_before, what="a new run on the detail screen")
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_keys_typed_faster_than_the_screen_repaints_apply_in_order(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        third = table(app).rows_by_id[table(app).shown_ids[2]].server.name
        for key in ("down", "down", "enter"):  # one burst, as a terminal delivers them
            app.post_message(events.Key(key, None))
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), what="details")
        assert app.screen.server_name == third
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_a_adds_a_server_with_inline_validation(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("a")
        assert isinstance(app.screen, ServerForm)
        form = app.screen
        await pilot.press(*"bad name!")
        assert "must be 1-63 characters" in str(form.query_one("#name-error").render())
        form.query_one("#name").value = "added-1"
        form.query_one("#host").value = "127.0.0.1"
        form.query_one("#port").value = "0"
        await pilot.pause()
        assert str(form.query_one("#name-error").render()) == ""
        assert "between 1 and 65535" in str(form.query_one("#port-error").render())
        form.query_one("#port").value = str(live.sim.hosts[0][1])
        form.query_one("#interval").value = "5"
        await pilot.pause()
        assert "at least 10 seconds" in str(form.query_one("#interval-error").render())
        form.query_one("#interval").value = "120"
        form.query_one("#username").value = live.sim.username
        assert form.query_one("#secret").password  # typed unseen
        form.query_one("#secret").value = "s3cret"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the form to close")
        added = next(row for row in await live.service.list_servers() if row.server.name == "added-1")
        assert added.server.interval == 120
        assert added.server.has_secret  # handed to the service, stored encrypted
        await until(pilot, lambda: added.server.id in table(app).rows_by_id, what="the new row")


async def test_form_tests_the_connection(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ServerForm), what="the form")
        form = app.screen
        await pilot.press("ctrl+t")
        result = form.query_one("#test-result")
        await until(pilot, lambda: result.has_class("-ok") or result.has_class("-failed"), what="the test result")
        assert "connected" in str(result.render()), str(result.render())


async def test_e_edits_the_selected_server(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        row = table(app).selected
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ServerForm), what="the form")
        form = app.screen
        assert form.query_one("#name").value == row.server.name
        assert form.query_one("#host").value == row.server.host
        form.query_one("#cpu").value = "150"
        await pilot.pause()
        assert "between 0 and 100" in str(form.query_one("#cpu-error").render())
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, ServerForm)  # refused: still open
        form.query_one("#cpu").value = "50"
        form.query_one("#interval").value = "600"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the form to close")
        edited = await live.service.server_row(row.server.id)
        assert edited.server.thresholds.cpu == 50 and edited.server.interval == 600


async def test_d_deletes_after_confirmation(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        row = table(app).selected
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        assert row.server.name in app.screen.question
        await pilot.press("n")
        assert isinstance(app.screen, DashboardScreen)
        assert len(await live.service.list_servers()) == HOSTS
        await pilot.press("d", "y")
        await until(pilot, lambda: row.server.id not in table(app).rows_by_id, what="the row to go")
        assert row.server.name not in [r.server.name for r in await live.service.list_servers()]
        assert table(app).row_count == HOSTS - 1


async def test_slash_filters_by_name_or_host(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        target = live.sim.hosts[1][0]
        await pilot.press("slash", *target[-4:])
        assert table(app).row_count == 1
        assert table(app).selected.server.name == target
        await pilot.press("escape")
        assert table(app).row_count == HOSTS
        await pilot.press("slash", *"127.0.0", "enter")  # every simulated host is on loopback
        assert table(app).row_count == HOSTS
        assert table(app).has_focus


async def test_s_cycles_the_sort(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        grid = table(app)
        by_name = sorted(grid.rows_by_id, key=lambda i: grid.rows_by_id[i].server.name)
        assert grid.shown_ids == by_name
        await pilot.press("s")
        assert grid.sort_mode == "status"
        await pilot.press("s")
        assert grid.sort_mode == "cpu"
        cpus = [grid.rows_by_id[i].latest.cpu_percent for i in grid.shown_ids]
        assert cpus == sorted(cpus, reverse=True)
        await pilot.press("s", "s")
        assert grid.sort_mode == "disk"
        await pilot.press("s")
        assert grid.sort_mode == "load"
        loads = [grid.rows_by_id[i].latest.load1 for i in grid.shown_ids]
        assert loads == sorted(loads, reverse=True)
        await pilot.press("s")
        assert grid.sort_mode == "age"
        taken = [grid.rows_by_id[i].last_collected_at for i in grid.shown_ids]
        assert taken == sorted(taken)  # the oldest sample first
        await pilot.press("s")
        assert grid.sort_mode == "name" and grid.shown_ids == by_name


async def test_j_opens_the_queue_screen(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("j")
        assert isinstance(app.screen, QueueScreen)
        screen = app.screen
        await until(pilot, lambda: screen.query_one("#schedule").row_count == HOSTS, what="the schedule")
        assert "completed" in str(screen.query_one(QueueBar).render())
        await pilot.press("p")
        assert await live.service.is_paused()
        await until(pilot, lambda: screen.query_one(QueueBar).has_class("-paused"), what="paused")
        await pilot.press("p")
        assert not await live.service.is_paused()
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_x_on_the_queue_screen_cleans_finished_runs(tmp_path, redis_url, redis_prefix) -> None:
    """With nothing to keep, clean leaves each server's newest run only (its status needs it)."""
    async with SimFleet(2, seed=9) as sim:
        settings = live_settings(
            tmp_path, redis_url, redis_prefix, sim, queue={"completed_keep": 0, "completed_max_age": 0}
        )
        loaded_config = LoadedConfig(settings=settings, path=tmp_path / "config.yaml", exists=True)
        async with open_service(loaded_config, worker=True) as service:
            # The workers' own hourly clean is claimed here first: only x may clean in this test
            # (on a loaded machine the first reconcile's clean could come after the collections).
            await service.cache.claim("clean", CLEAN_EVERY_S)
            for config in sim.server_configs():
                await service.add_server(config)
            await service.collect_now(None)
            await service.wait_collected([row.server for row in await service.list_servers()], timeout=30)
            await settled(service)
            assert (await service.stats()).completed > 2
            app = FleetApp(service)
            async with app.run_test(size=SIZE) as pilot:
                await loaded(pilot, app)
                await pilot.press("j")
                bar = app.screen.query_one(QueueBar)
                await pilot.press("x")
                await until(pilot, lambda: "completed 2 " in str(bar.render()), what="the clean")
                assert (await service.stats()).completed == 2


async def test_queue_screen_retries_a_failed_run(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        name = live.sim.hosts[2][0]
        await live.sim.stop(name)
        await live.service.collect_now([name])
        await until(pilot, lambda: any(r.status == "down" for r in table(app).rows_by_id.values()), what="a failure")
        await pilot.press("j")
        screen = app.screen
        failed = screen.query_one("#failed")
        await until(pilot, lambda: failed.row_count >= 1, what="the failed run")
        assert name in str(failed.get_row_at(0)[1])
        await live.sim.start(name)
        await pilot.press("t")
        await until(
            pilot,
            lambda: any(r.server.name == name and r.status == "up" for r in table(app).rows_by_id.values()),
            what="the retried server to come back",
        )


async def test_question_mark_shows_the_keys(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help").render())
        for key, label in [("c", "Collect all"), ("p", "Pause"), ("/", "Filter"), ("j", "Queue"), ("q", "Quit")]:
            assert label in text and key in text
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_command_palette_runs_dashboard_actions(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("ctrl+p")
        await pilot.press(*"Queue")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, QueueScreen), what="the queue screen from the palette")


async def test_mouse_selects_and_opens(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        grid = table(app)
        second = grid.shown_ids[1]
        await pilot.click(ServerTable, offset=(20, 2))  # header row, then the second server
        assert grid.selected_id == second
        await pilot.click(ServerTable, offset=(20, 2))
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), what="details on a second click")
        await pilot.press("escape")
        cpu_heading = sum(column.width + 2 for column in COLUMNS[:3]) + 1
        await pilot.click(ServerTable, offset=(cpu_heading, 0))
        assert grid.sort_mode == "cpu"
        cpus = [grid.rows_by_id[i].latest.cpu_percent for i in grid.shown_ids]
        assert cpus == sorted(cpus, reverse=True)


async def test_q_quits_cleanly(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("q")
    assert app.return_code == 0


async def test_app_opens_and_closes_its_own_service(tmp_path, redis_url, redis_prefix) -> None:
    """As `fleettop` runs it: the service is opened in the app's loop and closed on quit."""
    async with SimFleet(2, seed=3) as sim:
        config = [c.model_dump(mode="json", exclude_none=True) for c in sim.server_configs()]
        settings = live_settings(tmp_path, redis_url, redis_prefix, sim, servers=config)
        loaded_config = LoadedConfig(settings=settings, path=tmp_path / "config.yaml", exists=True)
        app = FleetApp(open_service=lambda: open_service(loaded_config, worker=True), config_path=loaded_config.path)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: table(app).row_count == 2, what="the config servers")
            await pilot.press("c")
            await until(pilot, lambda: all(r.status == "up" for r in table(app).rows_by_id.values()), what="collection")
            # Servers from the config file are read-only in the form and cannot be deleted here.
            await pilot.press("e")
            await until(pilot, lambda: isinstance(app.screen, ServerForm), what="the form")
            form = app.screen
            assert form.read_only
            assert f"defined in {loaded_config.path}; edit it there" in str(form.query_one("#read-only").render())
            assert form.query_one("#name").disabled and form.query_one("#save").disabled
            await pilot.press("escape", "d")
            assert isinstance(app.screen, DashboardScreen)
            await pilot.press("q")
        assert app.return_code == 0
        assert app.service is None  # the service (and its embedded worker) was closed on quit


async def test_header_says_when_no_worker_is_attached(tmp_path, redis_url, redis_prefix) -> None:
    """`--no-worker`: the dashboard attaches to a Redis where nobody collects."""
    async with SimFleet(1, seed=5) as sim:
        settings = live_settings(tmp_path, redis_url, redis_prefix, sim)
        loaded_config = LoadedConfig(settings=settings, path=tmp_path / "config.yaml", exists=True)
        async with open_service(loaded_config, worker=False) as service:
            await service.add_server(sim.server_configs()[0])
            app = FleetApp(service)
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: table(app).row_count == 1, what="the server")
                header = app.dashboard.query_one(HeaderBar)
                await until(pilot, lambda: "no worker" in str(header.render()), what="no worker in the header")
                row = next(iter(table(app).rows_by_id.values()))
                assert row.status == "unknown" and table(app).cell_text(row.server.id, "status") == "? new"
                await pilot.press("c")
                await until(
                    pilot, lambda: "waiting 1" in str(app.dashboard.query_one(QueueBar).render()), what="waiting"
                )


async def test_a_service_that_cannot_open_ends_the_app_with_the_reason() -> None:
    @contextlib.asynccontextmanager
    async def unreachable():
        raise ConnectionError("cannot reach redis at 127.0.0.1:1")
        yield  # an async generator, as open_service is

    app = FleetApp(open_service=unreachable)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
    assert app.return_code == 1  # and Textual prints "fleettop: cannot start: <why>" on exit


def toasts(app: FleetApp) -> list[str]:
    return [str(toast.render()) for toast in app.screen.query("Toast")]


async def test_without_a_config_file_the_dashboard_says_where_one_would_go(
    tmp_path, redis_url, redis_prefix, monkeypatch
) -> None:
    """As `fleettop` starts: no file at the config path, the defaults (and the environment)
    apply, and a notification names the file to create; with the file there, none."""
    path = tmp_path / "conf" / "config.yaml"
    monkeypatch.setattr(config.loader, "DEFAULT_CONFIG_PATH", path)  # only the default path may be missing
    environ = {
        "FLEETTOP_DATA_DIR": str(tmp_path / "data"),
        "FLEETTOP_REDIS__URL": redis_url,
        "FLEETTOP_REDIS__PREFIX": redis_prefix,  # "name:" as it is, not a YAML mapping
    }
    args = argparse.Namespace(no_worker=True, demo=None, listen=None)
    loaded_config = config.load(None, environ=environ)
    assert not loaded_config.exists
    app = dashboard_app(args, loaded_config)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: not table(app).loading, what="the server list")
        await until(pilot, lambda: toasts(app), what="a notification")
        [said] = toasts(app)
        assert (
            said
            == f"no config file: defaults in use; create {path} to change them (`fleettop config example` prints every key)"
        )
    path.parent.mkdir()
    path.write_text("worker:\n  concurrency: 2\n")
    app = dashboard_app(args, config.load(path, environ=environ))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: not table(app).loading, what="the server list")
        await pilot.pause(0.3)
        assert toasts(app) == []
