"""The screens besides the dashboard (detail, queue, form, help), driven with Pilot against
the real service (SQLite, Redis, simulated SSH hosts) or the fixed fleet of the snapshots."""

from __future__ import annotations

import argparse
import contextlib
import json
import stat
from datetime import datetime, timedelta, timezone

import pytest
from fixed_fleet import NOW, FixedFleet
from store_helpers import store_sample
from textual.widgets._footer import FooterKey
from tui_live import LiveFleet, live_settings, until

from fleettop.config import LoadedConfig, ServerConfig
from fleettop.domain import Metrics
from fleettop.errors import FleettopError
from fleettop.probe.sim import SimFleet
from fleettop.tui.app import FleetApp, dashboard_app
from fleettop.tui.screens.confirm import ConfirmScreen, NoticeScreen
from fleettop.tui.screens.detail import DetailScreen
from fleettop.tui.screens.form import ServerForm
from fleettop.tui.screens.help import HelpScreen
from fleettop.tui.screens.queue import QueueScreen
from fleettop.tui.widgets.bars import HeaderBar
from fleettop.tui.widgets.chart import Chart
from fleettop.wiring import open_service

SIZE = (120, 40)


# The most common first-run error, as the probe words it: its end is the fix.
HOSTKEY_ERROR = (
    "edge-1 (203.0.113.9:22): host key unknown (ssh-ed25519 SHA256:q6N0vY8qk2nGJk0l3cS5F8x1cWcV3v0pZkzJ8xqj1mE); "
    "check it and run: fleettop trust edge-1"
)


def text_of(widget) -> str:
    return str(widget.render())


def shown(widget) -> str:
    """What the widget shows on screen, its lines joined (a wrapped line breaks at a space)."""
    lines = [widget.render_line(y).text.strip() for y in range(widget.size.height)] if widget.display else []
    return " ".join(line for line in lines if line)


def screen_lines(app: FleetApp) -> list[str]:
    """The terminal's text, line by line, as the user sees it."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def toasts(app: FleetApp) -> list[str]:
    return [str(toast.render()) for toast in app.screen.query("Toast")]


def footer_actions(screen: DetailScreen) -> list[str]:
    return [key.action for key in screen.query(FooterKey)]


async def open_detail(pilot, app: FleetApp, name: str) -> DetailScreen:
    app.show_details(name)
    await until(
        pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.detail is not None, what="the detail screen"
    )
    return app.screen


async def test_detail_peaks_are_the_real_peaks_and_load_is_not_scaled_to_itself(live: LiveFleet) -> None:
    """D13: a 97 % spike among 5 % samples is the range's maximum over the last hour (raw
    samples) and the last 24 hours (5-minute buckets, whose average is lower), and a steady
    load of 0.25 is drawn low, not full height."""
    service = live.service
    quiet = await service.add_server(ServerConfig(name="quiet", host="192.0.2.1", enabled=False))
    now = datetime.now(timezone.utc)
    bucket = (int((now - timedelta(minutes=20)).timestamp()) // 600) * 600
    for minute in range(10):
        at = datetime.fromtimestamp(bucket + 10 + minute * 58, timezone.utc)
        cpu = 97.0 if minute == 5 else 5.0
        metrics = Metrics(
            collected_at=at,
            cpu_percent=cpu,
            mem_percent=40.0,
            disk_percent=50.0,
            load1=0.25,
            load5=0.25,
            load15=0.25,
            procs=90,
            uptime_s=86400,
        )
        await store_sample(service.repo, quiet.id, metrics)
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, app, "quiet")
        for key, tier in (("2", "5-minute buckets"), ("1", "samples")):
            await pilot.press(key)
            await until(pilot, lambda tier=tier: tier in shown(screen.query_one("#history-head")), what=f"the {tier}")
            assert "min 5%" in shown(screen.query_one("#chart-head-0")) and "max 97%" in shown(
                screen.query_one("#chart-head-0")
            )
            assert "max 0.25" in shown(screen.query_one("#chart-head-2"))
            load = screen.query_one("#chart-2", Chart)
            rows = [load.render_line(y).text for y in range(load.size.height)]
            assert rows[0].strip() == rows[1].strip() == "" and rows[2].strip(), f"load drawn as {rows!r}"


async def test_run_trigger_is_shown_as_plain_text() -> None:
    """#19 finding 5: a run's trigger comes from the database; an escape in it never reaches the terminal."""
    fleet = FixedFleet()
    runs = fleet._runs

    def hostile_runs(row):
        shown = runs(row)
        shown[0].trigger = "manual\x1b[2J[bold]x[/]"
        return shown

    fleet._runs = hostile_runs
    app = FleetApp(fleet, clock=lambda: NOW, live=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, app, "web-1")
        trigger = screen.query_one("#runs").get_row_at(0)[1]
        assert "\x1b" not in str(trigger) and "[bold]x[/]" in str(trigger)


@contextlib.asynccontextmanager
async def one_host(tmp_path, redis_url, redis_prefix, *, trusted: bool):
    """One simulated host, added and collected once, with its key trusted by ssh.known_hosts or
    by nothing (an empty known_hosts: the first run's "host key unknown")."""
    async with SimFleet(1, seed=11) as sim:
        known_hosts = sim.known_hosts_path
        if not trusted:
            known_hosts = tmp_path / "known_hosts"
            known_hosts.write_text("")
        ssh = {"known_hosts": str(known_hosts), "connect_timeout": 2, "command_timeout": 5}
        settings = live_settings(tmp_path, redis_url, redis_prefix, sim, ssh=ssh)
        loaded = LoadedConfig(settings=settings, path=tmp_path / "config.yaml", exists=True)
        async with open_service(loaded, worker=True) as service:
            [config] = sim.server_configs()
            server = await service.add_server(config)
            await service.collect_now([config.name])
            await service.wait_collected([server], timeout=30)
            yield sim, service, config.name


async def test_t_trusts_an_unknown_host_key_from_the_detail_screen(tmp_path, redis_url, redis_prefix) -> None:
    async with one_host(tmp_path, redis_url, redis_prefix, trusted=False) as (sim, service, name):
        own_known_hosts = service.settings.data_dir / "known_hosts"
        fingerprint = sim.host(name).host_key.get_fingerprint()
        app = FleetApp(service)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_detail(pilot, app, name)
            title = text_of(screen.query_one("#title"))
            assert "host key unknown" in title and "t: check the key this host presents and trust it" in title
            await until(pilot, lambda: "trust" in footer_actions(screen), what="t in the footer")
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            question = app.screen.question
            assert fingerprint in question and f"Trust it, recording it in {own_known_hosts}" in question
            assert app.screen.focused.id == "no"  # Cancel first: enter alone trusts nothing
            await pilot.press("enter")
            assert app.screen is screen and not own_known_hosts.exists()
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question again")
            await pilot.press("y")
            await until(pilot, lambda: screen.detail.row.status == "up", what="the server to be collected, now trusted")
            assert own_known_hosts.read_text().startswith(f"[127.0.0.1]:{sim.hosts[0][1]} ssh-ed25519 ")
            assert "host key" not in text_of(screen.query_one("#title"))
            # an empty footer is one being rebuilt: wait for the keys it shows once it is built again
            await until(
                pilot,
                lambda: footer_actions(screen) and "trust" not in footer_actions(screen),
                what="t gone from the footer",
            )
            keys = list(screen.query(FooterKey))
            await pilot.pause(2.5)  # the screen's 1 s refresh leaves the footer as it is (no rebuild)
            assert list(screen.query(FooterKey)) == keys
            await pilot.press("question_mark")  # nothing to trust now: t is neither in the footer nor in the help
            assert isinstance(app.screen, HelpScreen) and "Trust host key" not in text_of(app.screen.query_one("#help"))
            assert not screen.check_action("trust", ())


async def test_t_never_accepts_a_changed_host_key(tmp_path, redis_url, redis_prefix) -> None:
    async with one_host(tmp_path, redis_url, redis_prefix, trusted=True) as (sim, service, name):
        new_key = await sim.change_key(name)
        await service.collect_now([name])
        await service.wait_collected([await service.admin.get(name)], timeout=30)
        app = FleetApp(service)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_detail(pilot, app, name)
            assert "host key CHANGED" in text_of(screen.query_one("#title"))
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, NoticeScreen), what="the warning")
            notice = app.screen.text
            assert new_key.get_fingerprint() in notice and "DIFFERENT key" in notice
            assert f"fleettop trust {name} --replace" in notice
            await pilot.press("y", "enter")
            assert app.screen is screen
        assert not (service.settings.data_dir / "known_hosts").exists()
        with pytest.raises(FleettopError, match=f"run: fleettop trust {name} --replace"):
            await service.trust_host_key(name, new_key.get_fingerprint())
        assert not (service.settings.data_dir / "known_hosts").exists()  # nor through the service


async def test_detail_shows_the_whole_error_at_80_columns() -> None:
    """D7: the title and the selected run show the error to its end (the fix it names)."""
    fleet = FixedFleet()
    down = next(row for row in fleet.rows if row.status == "down")
    down.error = HOSTKEY_ERROR
    app = FleetApp(fleet, clock=lambda: NOW, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_detail(pilot, app, "edge-1")
        await pilot.pause()
        assert HOSTKEY_ERROR in shown(screen.query_one("#title"))
        assert HOSTKEY_ERROR in shown(screen.query_one("#run-error"))
        assert "manual" in str(screen.query_one("#runs").get_row_at(0)[1])  # the selected run's


async def test_detail_key_file_never_breaks_the_settings_box() -> None:
    """D25: at 80x24 a long key file path is cut from the left, keeping the file name."""
    fleet = FixedFleet()
    row = fleet.rows[0]
    row.server = row.server.model_copy(
        update={"auth": "key", "key_file": "/tmp/fleettop-sim-o20rjews/keys/deploy/client_key"}
    )
    app = FleetApp(fleet, clock=lambda: NOW, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_detail(pilot, app, row.server.name)
        await pilot.pause()
        panel = screen.query_one("#settings").region
        box = [line[panel.x : panel.right] for line in screen_lines(app)[panel.y : panel.bottom]]
        [key_line] = [line for line in box if "key file" in line]
        assert key_line.endswith("/client_key │") and "…" in key_line, box
        labels = {label for label, _, _ in screen.query_one("#settings").lines}
        inner = [line[2:-1] for line in box[1:-1] if line[2:-1].strip()]
        assert [line[:10].rstrip() for line in inner] == [
            label for label, _, _ in screen.query_one("#settings").lines
        ], box
        assert labels >= {"host", "auth", "key file"}  # each on its line: nothing wraps under the labels


async def test_queue_screen_has_its_header_help_and_full_errors() -> None:
    """D23 and D7: the header with health and clock, the queue's own help, the whole error."""
    fleet = FixedFleet()
    [failed] = await fleet.failed_runs()
    failed.error = HOSTKEY_ERROR

    async def failed_runs(limit=50):
        return [failed]

    fleet.failed_runs = failed_runs
    app = FleetApp(fleet, clock=lambda: NOW, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.show_queue()
        await until(
            pilot,
            lambda: isinstance(app.screen, QueueScreen) and any(t.row_count for t in app.screen.query("#failed")),
            what="the failed run",
        )
        screen = app.screen
        await pilot.pause()
        header = text_of(screen.query_one(HeaderBar))
        assert "redis ✓" in header and "db ✓" in header and "worker running" in header
        assert "2026-03-14 09:26:53" in header
        assert HOSTKEY_ERROR in shown(screen.query_one("#failed-error"))
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_text = text_of(app.screen.query_one("#help"))
        assert "Retry failed run" in help_text and "sort" not in help_text


async def test_queue_screen_says_when_nothing_failed() -> None:
    """D23: an empty "Failed runs" says none, and t says there is nothing to retry."""
    fleet = FixedFleet()

    async def no_failed_runs(limit=50):
        return []

    fleet.failed_runs = no_failed_runs
    app = FleetApp(fleet, clock=lambda: NOW, live=False)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        app.show_queue()
        await until(pilot, lambda: isinstance(app.screen, QueueScreen), what="the queue screen")
        await pilot.pause()
        assert shown(app.screen.query_one("#failed-none")) == "none"
        assert not app.screen.query_one("#failed").display
        await pilot.press("t")
        await until(pilot, lambda: toasts(app), what="an answer to t")
        assert toasts(app) == ["no failed run to retry"]


async def open_form(pilot, app: FleetApp) -> ServerForm:
    await until(pilot, lambda: app.dashboard.table.row_count, what="the server list")
    await pilot.press("a")
    await until(pilot, lambda: isinstance(app.screen, ServerForm), what="the form")
    return app.screen


async def test_form_toggles_read_without_colour_and_a_password_means_password_auth() -> None:
    """D25: "[x]"/"[ ]" and "(•)"/"( )", and typing a password for an agent server picks password."""
    app = FleetApp(FixedFleet(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(90, 30)) as pilot:
        form = await open_form(pilot, app)
        enabled = form.query_one("#enabled")
        assert text_of(enabled).startswith("[x] ")
        enabled.value = False
        await pilot.pause()
        assert text_of(enabled).startswith("[ ] ")
        radios = {method: text_of(form.query_one(f"#auth-{method}")) for method in ("agent", "key", "password")}
        assert radios == {"agent": "(•) agent ", "key": "( ) key ", "password": "( ) password "}
        form.query_one("#secret").focus()
        await pilot.press(*"s3cret")
        assert form.query_one("#auth-password").value and form.fields()["auth"] == "password"
        assert text_of(form.query_one("#auth-password")).startswith("(•)")
        # With key auth the field holds the key's passphrase: it stays key auth.
        form.query_one("#auth-key").value = True
        form.query_one("#secret").value = ""
        await pilot.press(*"phrase")
        assert form.fields()["auth"] == "key"


async def test_form_messages_are_in_one_style() -> None:
    """D22: no raw pydantic text, and an empty host is "required"."""
    app = FleetApp(FixedFleet(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(90, 30)) as pilot:
        form = await open_form(pilot, app)
        form.query_one("#port").value = "abc"
        form.query_one("#cpu").value = "lots"
        form.query_one("#host").value = "x"
        await pilot.pause()
        form.query_one("#host").value = ""
        await pilot.pause()
        assert text_of(form.query_one("#port-error")) == "must be a whole number (got 'abc')"
        assert text_of(form.query_one("#cpu-error")) == "must be a number (got 'lots')"
        assert text_of(form.query_one("#host-error")) == "is required"
        await pilot.press("ctrl+s")
        assert text_of(form.query_one("#name-error")) == "is required"


async def test_the_chosen_theme_is_saved_and_restored(tmp_path, make_settings) -> None:
    """D28: the palette's theme comes back at the next start, from data_dir/tui.json (0600)."""
    path = tmp_path / "data" / "tui.json"
    app = FleetApp(FixedFleet(), clock=lambda: NOW, live=False, prefs_path=path)
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "textual-dark"
        app.theme = "textual-light"
        await until(pilot, path.exists, what="the theme to be saved")
    assert json.loads(path.read_text()) == {"theme": "textual-light"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = FleetApp(FixedFleet(), clock=lambda: NOW, live=False, prefs_path=path)
    async with again.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert again.theme == "textual-light"
    loaded = LoadedConfig(settings=make_settings(), path=tmp_path / "config.yaml", exists=False)
    assert (
        dashboard_app(argparse.Namespace(no_worker=True, demo=None, listen=None), loaded).prefs_path
        == tmp_path / "data" / "tui.json"
    )


def contrast(foreground: str, background: str) -> float:
    """WCAG's contrast ratio of two #rrggbb colours."""

    def luminance(colour: str) -> float:
        channels = [int(colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


async def test_warnings_read_well_in_the_light_theme() -> None:
    """D28: amber text (warning cells, stale, paused) against the light theme's background and panel."""
    app = FleetApp(FixedFleet(), clock=lambda: NOW, live=False)
    async with app.run_test(size=SIZE) as pilot:
        app.theme = "textual-light"
        await pilot.pause()
        colours = app.theme_variables
        assert contrast(colours["warning"], colours["background"]) >= 4.5
        assert contrast(colours["warning"], colours["panel"]) >= 4
        assert contrast(colours["text-warning"], colours["warning-muted"][:7]) >= 4.5


def test_a_peak_is_written_as_the_figure_beside_it() -> None:
    """The detail screen's chart figures as the figures beside them: a disk at 90.1 % once
    showed "91%" beside a last-hour peak of "90%"."""
    from fleettop.tui.screens.detail import _figure

    assert _figure("disk:/")(90.1) == "91%" and _figure("cpu")(88.5) == "89%"
    assert _figure("load1")(0.25) == "0.25" and _figure("net_rx")(2048) == "2.0K/s"
