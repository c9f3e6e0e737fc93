"""`fleettop trust` and `fleettop servers test` against simulated hosts, with a real (SQLite) store."""

from __future__ import annotations

import argparse
import asyncio
import json

import pytest

from fleettop.cmd_probe import cmd_servers_test, cmd_trust
from fleettop.config import LoadedConfig
from fleettop.errors import UsageError
from fleettop.probe import CollectError
from fleettop.store.db import open_database
from fleettop.store.repo import Repository


def loaded_for(fleet, make_settings, tmp_path, known_hosts) -> LoadedConfig:
    name, port = fleet.hosts[0]
    settings = make_settings(
        ssh={"known_hosts": str(known_hosts), "key_file": str(fleet.client_key_path), "username": fleet.username},
        servers=[{"name": name, "host": fleet.address, "port": port, "auth": "key"}],
    )
    return LoadedConfig(settings=settings, path=tmp_path / "config.yaml", exists=False)


async def test_servers_test_prints_the_figures(fleet, make_settings, tmp_path, capsys):
    loaded = loaded_for(fleet, make_settings, tmp_path, fleet.known_hosts_path)
    name = fleet.hosts[0][0]
    assert await cmd_servers_test(argparse.Namespace(name=name, json=False), loaded) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{name} (127.0.0.1:{fleet.hosts[0][1]}): ok in ")
    assert "cpu" in out and "memory" in out and "load" in out
    assert await cmd_servers_test(argparse.Namespace(name=name, json=True), loaded) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["server"] == name and row["status"] == "ok" and row["error"] is None
    assert {"cpu_percent", "mem_percent", "disk_percent", "disks", "load1", "uptime_s", "net_rx_bps"} <= set(row)
    for _ in range(50):  # nothing kept open after a one-off test (the host notices the close shortly)
        if not fleet.host(name).connections:
            break
        await asyncio.sleep(0.02)
    assert fleet.host(name).connections == set()
    database = await open_database(loaded.settings)
    try:
        assert await Repository(database).latest_samples() == {}  # stores nothing
    finally:
        await database.close()


async def test_servers_test_reports_the_error(fleet, make_settings, tmp_path, capsys):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    loaded = loaded_for(fleet, make_settings, tmp_path, empty)
    name = fleet.hosts[0][0]
    with pytest.raises(CollectError) as caught:
        await cmd_servers_test(argparse.Namespace(name=name, json=False), loaded)
    assert caught.value.kind == "hostkey_unknown"
    assert await cmd_servers_test(argparse.Namespace(name=name, json=True), loaded) == 1
    row = json.loads(capsys.readouterr().out)
    assert (row["status"], row["kind"]) == ("failed", "hostkey_unknown") and name in row["error"]


async def test_unknown_server_is_a_usage_error(fleet, make_settings, tmp_path):
    loaded = loaded_for(fleet, make_settings, tmp_path, fleet.known_hosts_path)
    with pytest.raises(UsageError, match="no server named 'nope'"):
        await cmd_servers_test(argparse.Namespace(name="nope", json=False), loaded)


async def test_trust_records_the_key_in_the_own_known_hosts(fleet, make_settings, tmp_path, capsys):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    loaded = loaded_for(fleet, make_settings, tmp_path, empty)
    name, port = fleet.hosts[0]
    fingerprint = fleet.host(name).host_key.get_fingerprint()
    assert await cmd_trust(argparse.Namespace(name=name, yes=True), loaded) == 0
    out = capsys.readouterr().out
    assert fingerprint in out and "Trusted" in out
    own = loaded.settings.data_dir / "known_hosts"
    assert own.read_text().startswith(f"[127.0.0.1]:{port} ssh-ed25519 ")
    assert empty.read_text() == ""
    assert await cmd_trust(argparse.Namespace(name=name, yes=True), loaded) == 0
    assert "already trusted" in capsys.readouterr().out
    assert len(own.read_text().splitlines()) == 1
    assert await cmd_servers_test(argparse.Namespace(name=name, json=True), loaded) == 0
    database = await open_database(loaded.settings)
    try:
        entries = await Repository(database).audit_entries()
    finally:
        await database.close()
    assert [(e.action, e.target, e.detail) for e in entries] == [("trust", name, fingerprint)]


async def test_trust_after_a_key_change_warns(fleet, make_settings, tmp_path, capsys):
    loaded = loaded_for(fleet, make_settings, tmp_path, fleet.known_hosts_path)
    name = fleet.hosts[0][0]
    new_key = await fleet.change_key(name)
    assert await cmd_trust(argparse.Namespace(name=name, yes=True), loaded) == 0
    out = capsys.readouterr().out
    assert "DIFFERENT key" in out and new_key.get_fingerprint() in out


async def test_trust_without_yes_needs_a_terminal(fleet, make_settings, tmp_path, monkeypatch):
    loaded = loaded_for(fleet, make_settings, tmp_path, tmp_path / "missing")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(UsageError, match="--yes"):
        await cmd_trust(argparse.Namespace(name=fleet.hosts[0][0], yes=False), loaded)
    assert not (loaded.settings.data_dir / "known_hosts").exists()


async def test_the_trust_question_shows_on_the_terminal_with_stderr_thrown_away(fleet, tmp_path):
    """`fleettop trust web2 2>/dev/null` (to hide library noise) still asks, on /dev/tty (D21)."""
    import fcntl
    import os
    import pty
    import subprocess
    import sys
    import termios
    import time

    import yaml

    name, port = fleet.hosts[0]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / "data"),
        "ssh": {"known_hosts": str(empty), "key_file": str(fleet.client_key_path), "username": fleet.username},
        "servers": [{"name": name, "host": fleet.address, "port": port, "auth": "key"}],
    }))
    master, terminal = pty.openpty()

    def own_terminal() -> None:  # a session of its own, with this pty as its controlling terminal
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleettop", "--config", str(config), "trust", name,
        stdin=terminal, stdout=terminal, stderr=subprocess.DEVNULL, preexec_fn=own_terminal, cwd=tmp_path,
    )
    os.close(terminal)
    os.set_blocking(master, False)
    shown = b""

    async def read_until(text: bytes, timeout: float) -> None:
        nonlocal shown
        deadline = time.monotonic() + timeout
        while text not in shown:
            assert time.monotonic() < deadline, f"{text!r} not shown on the terminal: {shown!r}"
            try:
                shown += os.read(master, 4096)
            except (BlockingIOError, OSError):
                await asyncio.sleep(0.05)

    try:
        await read_until(b"Trust this key? [y/N] ", 20)
        os.write(master, b"n\n")
        assert await asyncio.wait_for(process.wait(), 20) == 1
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        os.close(master)
    assert fleet.host(name).host_key.get_fingerprint().encode() in shown
    assert not (tmp_path / "data" / "known_hosts").exists()
