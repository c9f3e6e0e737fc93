"""Tags and `groups:` (#15): a server's unset settings come from the group of its first tag that
sets them, then from `defaults:`; a group may disable its servers. SQLite and Postgres."""

from __future__ import annotations

import json

import pytest
import yaml

from fleettop.config import DefaultsConfig, GroupConfig, ServerConfig, Settings
from fleettop.domain import Thresholds
from fleettop.store.db import head_revision, open_database
from fleettop.store.repo import Repository

GROUPS = {
    "web": GroupConfig.model_validate({"interval": 60, "thresholds": {"cpu": 50}}),
    "prod": GroupConfig.model_validate({"interval": 120, "thresholds": {"cpu": 40, "ram": 70}, "enabled": False}),
}


async def test_server_then_first_tag_group_then_defaults(database):
    repo = Repository(database, DefaultsConfig(interval=300), groups=GROUPS)
    await repo.add_server(ServerConfig(name="web1", host="h1", tags=["web", "prod"]))
    await repo.add_server(ServerConfig(name="db1", host="h2", tags=["db"], interval=30, thresholds={"disk": 80}))
    await repo.add_server(ServerConfig(name="api1", host="h3", tags=["prod", "web"], interval=45, enabled=False))
    web1 = await repo.get_server("web1")
    assert web1.interval == 60 and web1.thresholds == Thresholds(cpu=50, ram=70, disk=90)
    assert web1.tags == ("web", "prod") and not web1.enabled
    assert set(web1.inherited) == {"interval", "cpu", "ram", "disk", "enabled"}
    db1 = await repo.get_server("db1")
    assert (db1.interval, db1.thresholds.disk, db1.enabled, db1.inherited) == (30, 80, True, ("cpu", "ram"))
    api1 = await repo.get_server("api1")  # disabled itself: not "inherited"
    assert (api1.interval, api1.thresholds.cpu, api1.enabled, "enabled" in api1.inherited) == (45, 40, False, False)
    assert [s.name for s in await repo.list_servers(enabled_only=True)] == ["db1"]
    assert [s.name for s in await repo.list_servers(tag="web")] == ["api1", "web1"]
    # The worker's view (the group-committed begin) resolves the same way.
    inputs = await repo.begin_collection(web1.id, job_key="k1", trigger="scheduled", attempt=1, skip_disabled=True)
    assert inputs.server == web1 and inputs.run is None


async def test_tags_and_jump_are_stored_and_synced_from_the_config(database):
    repo = Repository(database)
    changes = await repo.sync_config_servers([ServerConfig(name="web1", host="h1", tags=["web"], jump="ops@b1:2222")])
    assert changes == ["server 'web1': added from the config file"]
    assert (
        await repo.sync_config_servers([ServerConfig(name="web1", host="h1", tags=["web"], jump="ops@b1:2222")]) == []
    )
    changes = await repo.sync_config_servers([ServerConfig(name="web1", host="h1", tags=["web", "eu"], jump="none")])
    assert changes == ["server 'web1': updated from the config file"]
    web1 = await repo.get_server("web1")
    assert (web1.tags, web1.jump) == (("web", "eu"), "none")


@pytest.mark.empty_database
async def test_0005_adds_tags_and_jump_to_a_database_before_it_and_goes_back(settings: Settings):
    from alembic import command
    from sqlalchemy import inspect

    from fleettop.store import db as store_db

    def to(revision: str):
        def run(sync) -> None:
            alembic_config = store_db._alembic_config()
            alembic_config.attributes["connection"] = sync
            (command.downgrade if revision == "-1" else command.upgrade)(alembic_config, revision)

        return run

    def columns(sync) -> set[str]:
        return {column["name"] for column in inspect(sync).get_columns("servers")}

    database = await open_database(settings)
    try:
        repo = Repository(database)
        await repo.add_server(ServerConfig(name="web1", host="h1", tags=["web"]))
        async with database.engine.begin() as conn:
            await conn.run_sync(to("-1"))  # the revision before 0005
            assert not {"tags", "jump"} & await conn.run_sync(columns)
        async with database.engine.begin() as conn:
            await conn.run_sync(to(head_revision()))
            assert {"tags", "jump"} <= await conn.run_sync(columns)
        web1 = await repo.get_server("web1")
        assert web1 is not None and (web1.tags, web1.jump) == ((), None)
    finally:
        await database.close()


# -- the command line --------------------------------------------------------------------


def test_servers_add_edit_list_by_tag_and_group(fleettop, config_path):
    data = yaml.safe_load(config_path.read_text())
    data["groups"] = {"web": {"interval": 60, "thresholds": {"cpu": 50}}}
    config_path.write_text(yaml.safe_dump(data))
    code, out, err = fleettop(
        "servers", "add", "web1", "--host", "h1", "--tag", "web", "--tag", "eu", "--jump", "ops@b1:2222"
    )
    assert (code, err) == (0, "")
    assert out.startswith("added server 'web1' (ssh h1:22, auth agent, jump ops@b1:2222, every 60s*")
    assert "(* from groups: or defaults:), tags web,eu, enabled" in out
    fleettop("servers", "add", "db1", "--host", "h2", "--tag", "db")
    code, out, _ = fleettop("servers", "list", "--tag", "web")
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == ["web1"]
    assert out.splitlines()[1].split()[-2:] == ["web,eu", "db"]
    code, out, _ = fleettop("servers", "edit", "web1", "--tag", "api", "--jump", "default")
    assert (
        code == 0 and "tags web,eu -> api" in out and "jump ops@b1:2222 -> -" in out and "interval 60s* -> 900s*" in out
    )
    code, out, _ = fleettop("servers", "edit", "web1", "--no-tags")
    assert code == 0 and "tags api -> -" in out
    code, out, _ = fleettop("servers", "list", "--tag", "nothing")
    assert out == "No server carries the tag 'nothing'.\n"
    listed = json.loads(fleettop("servers", "list", "--json")[1])
    assert {s["name"]: s["tags"] for s in listed} == {"db1": ["db"], "web1": []}


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (
            ["servers", "add", "w", "--host", "h", "--jump", "ops@b 1"],
            "fleettop: jump: hop 1 'ops@b 1' has a space in it\n",
        ),
        (
            ["servers", "add", "w", "--host", "h", "--jump", "b1:99999"],
            "fleettop: jump: hop 1 'b1:99999' has port '99999': must be a number from 1 to 65535\n",
        ),
        (
            ["servers", "add", "w", "--host", "h", "--tag", "a b"],
            "fleettop: tags: tag 'a b' must be 1-63 characters of letters, digits, '.', '_' or '-', starting with a letter or digit\n",
        ),
        (
            ["collect", "--tag", "web", "--all"],
            "fleettop: server names, --all and --tag cannot be combined: give one of them\n",
        ),
    ],
)
def test_bad_tags_and_jumps_are_one_line_errors(fleettop, argv, error):
    code, out, err = fleettop(*argv)
    assert (code, out, err) == (2, "", error)


def test_a_bad_group_in_the_config_names_file_and_line(config_path, fleettop):
    data = yaml.safe_load(config_path.read_text())
    data["groups"] = {"web": {"interval": 5, "jump": "a,,b"}}
    config_path.write_text(yaml.safe_dump(data))
    code, _, err = fleettop("servers", "list")
    lines = err.splitlines()
    assert code == 2 and len(lines) == 2
    assert (
        lines[0].startswith(f"fleettop: {config_path}:")
        and "groups.web.interval: must be at least 10 seconds (got 5)" in lines[0]
    )
    assert "groups.web.jump: hop 2 is empty" in lines[1]
