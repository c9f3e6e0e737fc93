"""Tags in the TUI (#15): the form shows, keeps and edits tags and the jump host; the filter takes tag:NAME."""

from __future__ import annotations

from test_form_inherit import SIZE, edit_selected, save
from textual.widgets import Input
from tui_live import HOSTS, LiveFleet, until

from fleettop.config import ServerConfig
from fleettop.servers import fields_of
from fleettop.tui.screens.detail import DetailScreen, SettingsPanel


async def test_the_form_keeps_and_edits_tags_and_the_jump_host(live: LiveFleet) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        form = await edit_selected(pilot, app)
        form.query_one("#tags", Input).value = "web, prod,web"
        form.query_one("#jump", Input).value = "ops@bastion1:2222"
        await save(pilot, app)
        server = (await live.service.server_row(form.server.id)).server
        assert (server.tags, server.jump) == (("web", "prod"), "ops@bastion1:2222")

        form = await edit_selected(pilot, app)
        assert form.query_one("#tags", Input).value == "web, prod"
        assert form.query_one("#jump", Input).value == "ops@bastion1:2222"
        form.query_one("#cpu", Input).value = "70"  # another change keeps them
        await save(pilot, app)
        server = (await live.service.server_row(server.id)).server
        assert (server.tags, server.jump, server.thresholds.cpu) == (("web", "prod"), "ops@bastion1:2222", 70)

        form = await edit_selected(pilot, app)
        form.query_one("#jump", Input).value = "bastion 1"
        await pilot.pause()
        assert "has a space in it" in str(form.query_one("#jump-error").render())


async def test_the_filter_takes_tags(live: LiveFleet) -> None:
    servers = sorted(await live.service.repo.list_servers(), key=lambda server: server.name)
    for server, tags in zip(servers, (["web", "prod"], ["web"], ["db"])):
        await live.service.edit_server(server.name, ServerConfig.model_validate({**fields_of(server), "tags": tags}))
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        table = app.dashboard.table
        await until(pilot, lambda: table.row_count == HOSTS, what="the server list")
        await pilot.press("slash", *"tag:web")
        assert [table.rows_by_id[i].server.name for i in table.shown_ids] == [servers[0].name, servers[1].name]
        await pilot.press(*" tag:prod")
        assert [table.rows_by_id[i].server.name for i in table.shown_ids] == [servers[0].name]
        await pilot.press("escape", "slash", *f"tag:web {servers[1].name[-4:]}")
        assert [table.rows_by_id[i].server.name for i in table.shown_ids] == [servers[1].name]
        await pilot.press("escape", "slash", *"tag:nothing")
        assert table.row_count == 0


async def test_the_detail_screen_says_how_the_server_is_reached(live: LiveFleet) -> None:
    server = sorted(await live.service.repo.list_servers(), key=lambda server: server.name)[0]
    bastion_name, bastion_port = live.sim.hosts[1]
    live.sim.make_jump_host(bastion_name)
    jump = f"{live.sim.username}@127.0.0.1:{bastion_port}"
    await live.service.edit_server(
        server.name, ServerConfig.model_validate({**fields_of(server), "tags": ["web"], "jump": jump})
    )
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.dashboard.table.row_count == HOSTS, what="the server list")
        assert app.dashboard.table.selected.server.name == server.name  # by name: the first row
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), what="the detail screen")
        panel = app.screen.query_one(SettingsPanel)
        await until(pilot, lambda: panel.lines, what="the settings")
        lines = {label: value for label, value, _ in panel.lines}
        assert lines["host"] == f"{live.sim.username}@127.0.0.1:{server.port}"
        assert (lines["via"], lines["tags"]) == (jump, "web")


async def test_g_groups_by_tag_with_a_summary_line_that_folds() -> None:
    from scenes import SCENES

    app = SCENES["dashboard-by-tag"].app()
    async with app.run_test(size=(150, 30)) as pilot:
        table = app.dashboard.table
        await until(pilot, lambda: table.row_count == 8, what="the server list")
        names = lambda: [table.rows_by_id[i].server.name for i in table.shown_ids]  # noqa: E731
        await pilot.press("g", "home")
        assert table.grouped and table.selected_group == "db" and table.selected is None
        assert names() == ["db-1", "db-2", "edge-1", "cache-1", "web-1", "web-2", "backup-1", "batch-1"]
        assert table.group_summary("db") == "▾ db  2 servers  2 up  0 down  1 alerting  avg cpu 65%  ram 93%  disk 87%"
        assert table.group_summary("edge").startswith("▾ edge  1 server  0 up  1 down  0 alerting  avg cpu –  ram –")
        await pilot.press("enter")  # folds db: no detail screen
        assert app.screen is app.dashboard and "db-1" not in names() and table.group_summary("db").startswith("▸ db")
        await pilot.press("enter")
        assert "db-1" in names()
        await pilot.press("down", "enter")  # a server's line opens its details as ever
        await until(pilot, lambda: app.screen is not app.dashboard, what="the detail screen")
        await pilot.press("escape", "slash", *"tag:web", "enter")
        assert names() == ["web-1", "web-2"] and table.group_summary("web").startswith("▾ web  2 servers")
        await pilot.press("escape", "g")
        assert not table.grouped and table.row_count == 8 and table.selected_group is None
