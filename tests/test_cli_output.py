"""What the CLI prints, as a user sees it in a terminal: no library noise, one wording per error."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import forked_fleettop
import yaml
from ports import free_port


def write_config(tmp_path: Path, **extra) -> Path:
    data = {"data_dir": str(tmp_path / "data"), **extra}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def fleettop(config: Path, *args: str, timeout: float = 60, real: bool = False) -> subprocess.CompletedProcess[str]:
    """real=True: `python -m fleettop` itself, for what it prints while importing."""
    env = {**os.environ, "HOME": str(config.parent)}
    env.pop("PYTHONWARNINGS", None)
    argv = ["--config", str(config), *args]
    if not real:
        return forked_fleettop.run(argv, env=env, cwd=config.parent, timeout=timeout)
    return subprocess.run(
        [sys.executable, "-m", "fleettop", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=config.parent,
        stdin=subprocess.DEVNULL,
    )


def test_a_command_that_loads_asyncssh_prints_nothing_on_stderr(tmp_path):
    """cryptography 51 deprecates DSA, which asyncssh names at import: ten warning lines (D4)."""
    port = free_port()  # nothing listens: connection refused
    config = write_config(tmp_path, servers=[{"name": "web1", "host": "127.0.0.1", "port": port}])

    tested = fleettop(config, "servers", "test", "web1", "--json", real=True)

    assert tested.returncode == 1 and json.loads(tested.stdout)["status"] == "failed"
    assert tested.stderr == ""
    missing = fleettop(config, "trust", "nosuch")
    assert missing.stderr.splitlines() == ["fleettop: no server named 'nosuch' (see: fleettop servers list)"]


def test_errors_name_a_server_by_host_and_port_in_one_form(tmp_path):
    """Port 22 shown, no IPv6 brackets around an IPv4 address or a name (D17)."""
    port = free_port()
    config = write_config(
        tmp_path,
        servers=[
            {"name": "web1", "host": "127.0.0.1", "port": port},
            {"name": "web6", "host": "::1", "port": port},
            {"name": "ssh22", "host": "127.0.0.1", "port": 22 if not _listening(22) else port},
        ],
    )

    errors = {}
    for name in ("web1", "web6", "ssh22"):
        result = fleettop(config, "servers", "test", name, "--json")
        errors[name] = json.loads(result.stdout)["error"]

    assert errors["web1"] == f"web1 (127.0.0.1:{port}): connection refused"
    assert errors["web6"].startswith(f"web6 ([::1]:{port}): ")
    if not _listening(22):
        assert errors["ssh22"] == "ssh22 (127.0.0.1:22): connection refused"


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


NO_SUCH = "fleettop: no server named 'nosuch' (see: fleettop servers list)"


def test_every_command_says_no_such_server_the_same_way_with_exit_2(tmp_path):
    """One wording and one exit code wherever a name matches no server (D16)."""
    config = write_config(tmp_path)
    commands = [
        ("collect", "nosuch"),
        ("export", "--server", "nosuch"),
        ("servers", "edit", "nosuch", "--port", "2222"),
        ("servers", "remove", "nosuch", "--yes"),
        ("servers", "test", "nosuch"),
        ("trust", "nosuch"),
    ]
    answers = {command: fleettop(config, *command) for command in commands}
    assert {command: (result.returncode, result.stdout, result.stderr) for command, result in answers.items()} == {
        command: (2, "", NO_SUCH + "\n") for command in commands
    }


def test_collect_says_names_and_all_cannot_be_combined(tmp_path):
    result = fleettop(write_config(tmp_path), "collect", "--all", "web2")
    assert (result.returncode, result.stderr) == (
        2,
        "fleettop: server names, --all and --tag cannot be combined: give one of them\n",
    )


def test_every_json_output_ends_with_a_newline(tmp_path, redis_url):
    """The next prompt starts on a line of its own (D18). On a configured Redis, which outlives
    each command, so `queue pause` answers rather than refuses."""
    prefix = f"fleettop-test-json-{os.getpid()}-{tmp_path.name}:"
    config = write_config(
        tmp_path,
        servers=[{"name": "web1", "host": "127.0.0.1", "port": free_port()}],
        redis={"url": redis_url, "prefix": prefix},
    )
    commands = [
        ("servers", "list", "--json"),
        ("servers", "add", "web2", "--host", "127.0.0.1", "--json"),
        ("servers", "edit", "web2", "--port", "2222", "--json"),
        ("servers", "test", "web1", "--json"),
        ("audit", "--json"),
        ("export", "--format", "json"),
        ("queue", "stats", "--json"),
        ("queue", "pause", "--json"),
        ("queue", "resume", "--json"),
        ("queue", "clean", "--json"),
        ("collect", "web1", "--wait", "--json"),
    ]
    config.write_text(config.read_text() + "worker: {retries: 1}\n")
    for command in commands:
        result = fleettop(config, *command)
        assert result.stdout.endswith("\n") and json.loads(result.stdout) is not None, (
            command,
            result.stdout,
            result.stderr,
        )
