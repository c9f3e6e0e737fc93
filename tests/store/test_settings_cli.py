"""Issue 12: settings do what they say, and the first ten minutes (D3, D20, D22, D27), as a
user meets them at the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleettop import config
from fleettop.cli import main


@pytest.fixture
def run(capsys):
    """`fleettop ARGS...` in-process; returns (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse refusing an argument
            code = exc.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def config_file(tmp_path: Path):
    """Write the config file (always with this test's data_dir); returns its path."""
    path = tmp_path / "config.yaml"

    def write(text: str = "") -> Path:
        path.write_text(f"data_dir: {tmp_path / 'data'}\n{text}")
        return path

    return write


def listed(run, path: Path) -> dict[str, dict]:
    code, out, err = run("--config", str(path), "servers", "list", "--json")
    assert code == 0, err
    return {server["name"]: server for server in json.loads(out)}


def test_servers_that_set_nothing_follow_the_defaults_changed_after_they_were_added(run, config_file):
    path = config_file()
    assert run("--config", str(path), "servers", "add", "web1", "--host", "127.0.0.1", "--port", "2999")[0] == 0
    assert (
        run("--config", str(path), "servers", "add", "web2", "--host", "127.0.0.2", "--interval", "300", "--ram", "80")[
            0
        ]
        == 0
    )
    config_file("defaults:\n  interval: 60\n  thresholds:\n    cpu: 50\n")
    servers = listed(run, path)
    assert (servers["web1"]["interval"], servers["web1"]["thresholds"]) == (60, {"cpu": 50, "ram": 95, "disk": 90})
    assert servers["web1"]["inherited"] == ["interval", "cpu", "ram", "disk"]
    assert (servers["web2"]["interval"], servers["web2"]["thresholds"]) == (300, {"cpu": 50, "ram": 80, "disk": 90})
    assert servers["web2"]["inherited"] == ["cpu", "disk"]
    code, out, _ = run("--config", str(path), "servers", "list")
    assert code == 0
    web1 = next(line for line in out.splitlines() if line.startswith("web1 "))
    assert "60s*" in web1 and "50*/95*/90*" in web1
    assert out.splitlines()[-1].startswith("* from defaults: in the config")


def test_edit_default_returns_a_setting_to_the_defaults(run, config_file):
    path = config_file()
    run("--config", str(path), "servers", "add", "web1", "--host", "127.0.0.1", "--interval", "120", "--cpu", "70")
    code, out, err = run("--config", str(path), "servers", "edit", "web1", "--interval", "default", "--cpu", "default")
    assert (code, err) == (0, "")
    assert out == "edited server 'web1': interval 120s -> 900s*, cpu threshold 70 -> 90*\n"
    config_file("defaults:\n  interval: 45\n")
    assert listed(run, path)["web1"]["interval"] == 45
    code, _, err = run("--config", str(path), "servers", "edit", "web1", "--cpu", "lots")
    assert code == 2 and err.endswith("argument --cpu: expected a percentage or 'default', got 'lots'\n")


def test_edit_prints_values_as_a_user_writes_them(run, config_file):
    path = config_file()
    run("--config", str(path), "servers", "add", "web1", "--host", "127.0.0.1")
    code, out, _ = run("--config", str(path), "servers", "edit", "web1", "--disable", "--user", "ops")
    assert code == 0
    assert out == "edited server 'web1': username - -> ops, enabled yes -> no\n"
    assert "True" not in out and "None" not in out


def test_a_key_file_that_is_not_there_is_refused(run, config_file, tmp_path):
    path = config_file()
    code, out, err = run(
        "--config", str(path), "servers", "add", "x2", "--host", "h", "--auth", "key", "--key-file", "/nonexistent"
    )
    assert (code, out, err) == (2, "", "fleettop: --key-file /nonexistent: no such file\n")
    key = tmp_path / "id_test"
    key.write_text("not checked here: only that it is there\n")
    assert (
        run("--config", str(path), "servers", "add", "x2", "--host", "h", "--auth", "key", "--key-file", str(key))[0]
        == 0
    )
    code, _, err = run("--config", str(path), "servers", "edit", "x2", "--key-file", str(tmp_path / "typo"))
    assert (code, err) == (2, f"fleettop: --key-file {tmp_path / 'typo'}: no such file\n")
    assert listed(run, path)["x2"]["key_file"] == str(key)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "expected a whole number of hosts, got 'abc'"),
        ("100000", "expected 1 to 2000 hosts, got 100000"),
        ("0", "expected 1 to 2000 hosts, got 0"),
    ],
)
def test_demo_takes_a_whole_number_of_hosts_up_to_its_maximum(run, value, message):
    code, _, err = run("--demo", value)
    assert code == 2
    assert err.splitlines()[-1] == f"fleettop: error: argument --demo: {message}"


@pytest.fixture
def first_run(tmp_path, monkeypatch):
    """No config file at the default path, and a fresh data_dir."""
    monkeypatch.setattr(config.loader, "DEFAULT_CONFIG_PATH", tmp_path / "no-config.yaml")
    monkeypatch.delenv("FLEETTOP_CONFIG", raising=False)
    monkeypatch.setenv("FLEETTOP_DATA_DIR", str(tmp_path / "data"))


def test_a_first_run_lists_the_localhost_it_collects_and_a_removal_sticks(run, first_run):
    code, out, _ = run("servers", "list")
    assert code == 0
    header, row, legend = out.splitlines()
    cells = row.split()
    assert cells[:6] == ["localhost", "localhost", "-", "-", "local", "local"]  # no port 22, no "auth agent"
    assert cells[6] == "15s*"  # a local server's default interval: defaults.local_interval
    code, out, _ = run("servers", "remove", "localhost", "--yes")
    assert code == 0
    for _ in range(2):
        code, out, _ = run("servers", "list")
        assert (code, out.startswith("No servers yet")) == (0, True)
    assert run("servers", "list", "--json")[1].strip() == "[]"


def test_adding_a_local_server_says_neither_port_nor_auth(run, config_file):
    path = config_file()
    code, out, _ = run("--config", str(path), "servers", "add", "me", "--host", "localhost", "--transport", "local")
    assert code == 0
    assert out.startswith("added server 'me' (local localhost, every 15s*, ")
    assert ":22" not in out and "auth" not in out
