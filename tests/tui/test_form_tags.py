"""Tags and the jump host in the server form (#15): shown, kept when other fields change, edited."""

from __future__ import annotations

from test_form_inherit import SIZE, edit_selected, save
from textual.widgets import Input
from tui_live import LiveFleet


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
