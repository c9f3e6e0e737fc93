"""The screens besides the dashboard (detail, queue, form, help), driven with Pilot against
the real service (SQLite, Redis, simulated SSH hosts) or the fixed fleet of the snapshots."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fixed_fleet import NOW, FixedFleet
from tui_live import LiveFleet, until

from fleettop.config import ServerConfig
from fleettop.domain import Metrics
from fleettop.tui.app import FleetApp
from fleettop.tui.screens.detail import DetailScreen
from fleettop.tui.widgets.spark import BARS, Spark

SIZE = (120, 40)


def text_of(widget) -> str:
    return str(widget.render())


async def open_detail(pilot, app: FleetApp, name: str) -> DetailScreen:
    app.show_details(name)
    await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.detail is not None, what="the detail screen")
    return app.screen


async def test_detail_peaks_are_the_real_peaks_and_load_is_not_scaled_to_itself(live: LiveFleet) -> None:
    """D13: a 97 % spike among 5 % samples of one 10-minute bucket is the 24-hour peak too (not
    the bucket's 14 % average), and a steady load of 0.25 is drawn low, not full height."""
    service = live.service
    quiet = await service.add_server(ServerConfig(name="quiet", host="192.0.2.1", enabled=False))
    now = datetime.now(timezone.utc)
    bucket = (int((now - timedelta(minutes=20)).timestamp()) // 600) * 600
    for minute in range(10):
        at = datetime.fromtimestamp(bucket + 10 + minute * 58, timezone.utc)
        cpu = 97.0 if minute == 5 else 5.0
        metrics = Metrics(collected_at=at, cpu_percent=cpu, mem_percent=40.0, disk_percent=50.0,
                          load1=0.25, load5=0.25, load15=0.25, procs=90, uptime_s=86400)
        await service.repo.add_sample(quiet.id, metrics)
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, app, "quiet")
        assert text_of(screen.query_one("#h1-cpu-peak")) == "97%"
        assert text_of(screen.query_one("#h24-cpu-peak")) == "97%"
        assert text_of(screen.query_one("#h24-load1-peak")) == "0.25"
        for span in ("h1", "h24"):
            drawn = text_of(screen.query_one(f"#{span}-load1", Spark))
            assert drawn and set(drawn) == {BARS[2]}, f"{span} load drawn as {drawn!r}"


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
