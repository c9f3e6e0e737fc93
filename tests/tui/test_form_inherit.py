"""D3 in the server form: a setting taken from `defaults:` is an empty field whose placeholder
is the value in force; left empty it keeps following the config, emptied it goes back to it."""

from __future__ import annotations

from textual.widgets import Input
from tui_live import LiveFleet, until

from fleettop.tui.screens.dashboard import DashboardScreen
from fleettop.tui.screens.form import ServerForm

SIZE = (160, 40)


async def edit_selected(pilot, app) -> ServerForm:
    await until(pilot, lambda: app.dashboard.table.row_count > 0, what="the server list")
    await pilot.press("e")
    await until(pilot, lambda: isinstance(app.screen, ServerForm), what="the form")
    return app.screen


async def save(pilot, app) -> None:
    await pilot.press("ctrl+s")
    await until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the form to close")


async def test_inherited_settings_show_as_placeholders_and_emptying_one_inherits_again(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        form = await edit_selected(pilot, app)
        server = form.server
        interval, cpu = form.query_one("#interval", Input), form.query_one("#cpu", Input)
        assert (interval.value, interval.placeholder) == ("", "default: 3600")  # live_settings: defaults.interval 3600
        assert (cpu.value, cpu.placeholder) == ("", "default: 90")
        cpu.value = "50"
        await save(pilot, app)
        edited = (await live.service.server_row(server.id)).server
        assert edited.thresholds.cpu == 50 and edited.inherited == ("interval", "ram", "disk")

        form = await edit_selected(pilot, app)
        cpu = form.query_one("#cpu", Input)
        assert cpu.value == "50"
        cpu.value = ""
        await save(pilot, app)
        edited = (await live.service.server_row(server.id)).server
        assert edited.thresholds.cpu == 90 and "cpu" in edited.inherited
