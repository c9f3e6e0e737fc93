"""Hostile users and hostile files: server names and hosts with shell metacharacters,
markup, escapes, unicode and great length, typed at the CLI or in the dashboard's form,
are refused (or, where a value may hold anything, stored and shown literally) and never
executed; the config loader and the server validator under hypothesis give only their
own one-line errors."""

from __future__ import annotations

import os
import re
import string
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from queue_helpers import service_for, wait_until

from fleettop import config
from fleettop.cli import main
from fleettop.tui.app import FleetApp
from fleettop.tui.screens.dashboard import DashboardScreen
from fleettop.tui.screens.form import ServerForm

CANARY = Path(tempfile.gettempdir()) / f"fleettop-pwned-{os.getpid()}"
SHELL = [
    f"$(touch {CANARY})",
    f"`touch {CANARY}`",
    f"x;touch {CANARY}",
    f"x|touch {CANARY}",
    f"x&&touch {CANARY}",
    f"x\ntouch {CANARY}",
]
MARKUP = ["[bold red]boom[/]", "[link=file:///etc/passwd]x[/link]", "\x1b[2J\x1b]0;pwned\x07", "x\x00y"]
ODD = [
    "名前",
    "ünïcode.example",
    "a" * 64,
    "a" * 10_000,
    "-oProxyCommand=touch",
    "../../etc/passwd",
    "a b",
    "",
    " ",
    ".",
]
HOSTILE = SHELL + MARKUP + ODD
# `$` matches before a final newline; the CLI must refuse these (the form strips its fields)
TRAILING_NEWLINE = ["nl1\n", "127.0.0.1\n", "deploy\n"]
# ipaddress takes anything after an IPv6 '%' as its zone
ZONE = ["fe80::1%\x1b]0;pwned\x07", "fe80::1%eth0 x", "fe80::1%a\nb"]
ALLOWED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@pytest.fixture
def cli_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\n")
    return path


@pytest.mark.parametrize("field", ["name", "host", "username"])
def test_cli_refuses_hostile_names_hosts_and_users(cli_config: Path, capsys, field: str):
    refused = 0
    for value in HOSTILE + TRAILING_NEWLINE + ZONE:
        args = {"name": "ok-name", "host": "127.0.0.1", "username": "deploy"}
        args[field] = value
        code = main(
            [
                "--config",
                str(cli_config),
                "servers",
                "add",
                f"--host={args['host']}",
                f"--user={args['username']}",
                "--",
                args["name"],
            ]
        )
        out, err = capsys.readouterr()
        assert code == 2, (field, value, out, err)
        assert "\x1b" not in err and "\x07" not in err and "\x00" not in err, err
        assert all(line.startswith("fleettop: ") for line in err.splitlines()), err
        refused += 1
    assert refused == len(HOSTILE + TRAILING_NEWLINE + ZONE)
    assert not CANARY.exists()
    assert main(["--config", str(cli_config), "servers", "list", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"  # nothing was added


def test_a_key_file_path_is_kept_literally_and_never_run(cli_config: Path, capsys, tmp_path: Path):
    hostile = f"{tmp_path}/$(touch {CANARY})`id`;[red]k[/]"
    Path(hostile).parent.mkdir(parents=True)
    Path(hostile).write_text("")  # `servers add` refuses a key file that is not there
    assert (
        main(
            [
                "--config",
                str(cli_config),
                "servers",
                "add",
                "web1",
                "--host",
                "127.0.0.1",
                "--auth",
                "key",
                "--key-file",
                hostile,
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["--config", str(cli_config), "servers", "list", "--json"]) == 0
    listed = capsys.readouterr().out
    assert hostile.replace("\\", "\\\\") in listed
    assert not CANARY.exists()


async def test_the_form_refuses_hostile_input_and_shows_it_literally(make_config, short_dir: Path, fleet):
    data = make_config(servers=[])
    async with service_for(data, worker=False) as service:
        app = FleetApp(service, config_path=short_dir / "config.yaml", live=False)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.pause(0.5)
            await pilot.press("a")
            await wait_until(lambda: isinstance(app.screen, ServerForm), 5)
            form = app.screen
            tried = 0
            for value in HOSTILE[:-4]:  # the last ones are blank: "is required" is tested elsewhere
                for field in ("name", "host"):
                    form.query_one("#name").value = value if field == "name" else "ok-name"
                    form.query_one("#host").value = value if field == "host" else "127.0.0.1"
                    await pilot.pause()
                    await pilot.press("ctrl+s")
                    await pilot.pause()
                    assert isinstance(app.screen, ServerForm), (field, value)
                    shown = str(form.query_one(f"#{field}-error").render())
                    assert shown and "\x1b" not in shown, (field, value, shown)
                    tried += 1
            assert tried == 2 * (len(HOSTILE) - 4)
            await pilot.press("escape")
            await wait_until(lambda: isinstance(app.screen, DashboardScreen), 5)
        assert await service.list_servers() == []
    assert not CANARY.exists()


@settings(max_examples=400, deadline=None)
@given(name=st.text(max_size=80), host=st.text(max_size=80), username=st.one_of(st.none(), st.text(max_size=40)))
def test_validate_server_accepts_only_inert_values(name, host, username):
    try:
        server = config.validate_server({"name": name, "host": host, "username": username})
    except config.ConfigError as exc:
        assert exc.problems and all("\n" not in line for line in exc.problems)
        return
    safe = set(string.ascii_letters + string.digits + "._-:[]")
    assert ALLOWED_NAME.fullmatch(server.name)
    assert set(server.host) <= safe and not server.host.startswith("-")
    assert server.username is None or set(server.username) <= safe


env_names = st.sampled_from(
    [
        "FLEETTOP_WORKER__CONCURRENCY",
        "FLEETTOP_REDIS__URL",
        "FLEETTOP_DATA_DIR",
        "FLEETTOP_SERVERS",
        "FLEETTOP_DEFAULTS__INTERVAL",
        "FLEETTOP_SSH__KNOWN_HOSTS",
        "FLEETTOP_NOPE__X",
        "FLEETTOP_WORKER",
        "FLEETTOP___",
        "FLEETTOP_A__B__C",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(env_names, st.text(max_size=40), max_size=4))
def test_environment_overrides_get_one_line_errors(environ):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text("worker:\n  concurrency: 3\n")
        try:
            config.load(path, environ=environ)
        except config.ConfigError as exc:
            assert exc.problems and all("\n" not in line for line in exc.problems)


def test_a_tilde_naming_nobody_is_a_config_error(tmp_path: Path):
    """Found by the fuzzer above: FLEETTOP_DATA_DIR=~0 raised RuntimeError from expanduser()."""
    path = tmp_path / "config.yaml"
    path.write_text("ssh:\n  known_hosts: ~nosuchuser-fleettop/known_hosts\n")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, environ={"FLEETTOP_DATA_DIR": "~0"})
    assert len(caught.value.problems) == 2 and all("no such user" in line for line in caught.value.problems)
    with pytest.raises(config.ConfigError):
        config.load("~nosuchuser-fleettop/config.yaml", environ={})


def test_a_nul_in_a_path_is_a_config_error(tmp_path: Path):
    """A NUL byte in a path made mkdir() raise ValueError (a traceback) at start."""
    path = tmp_path / "config.yaml"
    path.write_text('data_dir: "/tmp/a\\x00b"\nssh:\n  known_hosts: "/tmp/k\\x00h"\n')
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, environ={})
    assert [line.split(": ", 2)[1] for line in caught.value.problems] == ["data_dir", "ssh.known_hosts"]
    with pytest.raises(config.ConfigError):
        config.validate_server({"name": "a", "host": "127.0.0.1", "key_file": "/k\x00"})
