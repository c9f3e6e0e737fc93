"""`fleettop trust` and `fleettop servers test` against simulated hosts, with a real (SQLite) store."""

from __future__ import annotations

import argparse
import asyncio
import json

import pytest

from fleettop.cli.servers import cmd_servers
from fleettop.cli.trust import cmd_trust, cmd_untrust
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
    assert await cmd_servers(argparse.Namespace(action="test", name=name, json=False), loaded) == 0
    out = capsys.readouterr().out
    resolved, result = out.split("\n", 1)
    assert resolved == (
        f"{name}: {fleet.username}@127.0.0.1:{fleet.hosts[0][1]}, auth key {fleet.client_key_path}, jump none (direct)"
    )
    assert result.startswith(f"{name} (127.0.0.1:{fleet.hosts[0][1]}): ok in ")
    assert "cpu" in out and "memory" in out and "load" in out
    assert await cmd_servers(argparse.Namespace(action="test", name=name, json=True), loaded) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["server"] == name and row["status"] == "ok" and row["error"] is None
    assert row["resolved"] == {
        "address": "127.0.0.1",
        "port": fleet.hosts[0][1],
        "alias": None,
        "user": fleet.username,
        "auth": f"key {fleet.client_key_path}",
        "jump": [],
    }
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
        await cmd_servers(argparse.Namespace(action="test", name=name, json=False), loaded)
    assert caught.value.kind == "hostkey_unknown"
    assert capsys.readouterr().out.startswith(
        f"{name}: {fleet.username}@127.0.0.1:"
    )  # what it resolved to, before the error
    assert await cmd_servers(argparse.Namespace(action="test", name=name, json=True), loaded) == 1
    row = json.loads(capsys.readouterr().out)
    assert (row["status"], row["kind"]) == ("failed", "hostkey_unknown") and name in row["error"]


async def test_unknown_server_is_a_usage_error(fleet, make_settings, tmp_path):
    loaded = loaded_for(fleet, make_settings, tmp_path, fleet.known_hosts_path)
    with pytest.raises(UsageError, match="no server named 'nope'"):
        await cmd_servers(argparse.Namespace(action="test", name="nope", json=False), loaded)


async def test_trust_records_the_key_in_the_own_known_hosts(fleet, make_settings, tmp_path, capsys):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    loaded = loaded_for(fleet, make_settings, tmp_path, empty)
    name, port = fleet.hosts[0]
    fingerprint = fleet.host(name).host_key.get_fingerprint()
    assert await cmd_trust(argparse.Namespace(name=name, yes=True, replace=False), loaded) == 0
    out = capsys.readouterr().out
    assert fingerprint in out and "Trusted" in out
    own = loaded.settings.data_dir / "known_hosts"
    assert own.read_text().startswith(f"[127.0.0.1]:{port} ssh-ed25519 ")
    assert empty.read_text() == ""
    assert await cmd_trust(argparse.Namespace(name=name, yes=True, replace=False), loaded) == 0
    assert "already trusted" in capsys.readouterr().out
    assert len(own.read_text().splitlines()) == 1
    assert await cmd_servers(argparse.Namespace(action="test", name=name, json=True), loaded) == 0
    database = await open_database(loaded.settings)
    try:
        entries = await Repository(database).audit_entries()
    finally:
        await database.close()
    assert [(e.action, e.target, e.detail) for e in entries] == [("trust", name, fingerprint)]


def trust_args(name: str, *, yes: bool = False, replace: bool = False) -> argparse.Namespace:
    return argparse.Namespace(name=name, yes=yes, replace=replace)


async def test_trust_yes_refuses_a_changed_key(fleet, make_settings, tmp_path, capsys):
    """Security review finding 6: --yes accepts a new key only; a changed one (what a man in
    the middle shows) takes an answer at the terminal or --replace."""
    loaded = loaded_for(fleet, make_settings, tmp_path, fleet.known_hosts_path)
    name = fleet.hosts[0][0]
    new_key = await fleet.change_key(name)
    with pytest.raises(UsageError) as refused:
        await cmd_trust(trust_args(name, yes=True), loaded)
    assert str(refused.value) == (
        f"not trusted: the host key of {name} CHANGED and --yes accepts only a new key; "
        f"check the fingerprint, then run: fleettop trust {name} --replace"
    )
    out = capsys.readouterr().out
    assert "DIFFERENT key" in out and new_key.get_fingerprint() in out
    assert not (loaded.settings.data_dir / "known_hosts").exists()
    with pytest.raises(CollectError) as caught:
        await cmd_servers(argparse.Namespace(action="test", name=name, json=False), loaded)
    assert caught.value.kind == "hostkey_changed"


async def test_trust_replace_takes_the_old_key_out_and_warns_of_the_users_known_hosts(
    fleet, make_settings, tmp_path, capsys
):
    """--replace records the new key in place of the old one (atomically, mode 0600): a host
    showing the old key again is refused. A key left in ssh.known_hosts, which fleettop never
    writes, is named in a warning."""
    user_known_hosts = tmp_path / "user_known_hosts"
    user_known_hosts.write_text("")
    loaded = loaded_for(fleet, make_settings, tmp_path, user_known_hosts)
    name, port = fleet.hosts[0]
    own = loaded.settings.data_dir / "known_hosts"
    old_key = fleet.host(name).host_key
    assert await cmd_trust(trust_args(name, yes=True), loaded) == 0
    own.write_text(
        own.read_text() + f"# a comment\nother.example,[127.0.0.1]:{port} {own.read_text().split(maxsplit=1)[1]}"
    )
    new_key = await fleet.change_key(name)
    assert await cmd_trust(trust_args(name, replace=True), loaded) == 0
    out, err = capsys.readouterr()
    assert "Trusted: recorded in" in out and "in place of 2 earlier key(s)" in out and err == ""
    lines = own.read_text().splitlines()
    assert lines[0] == "# a comment" and lines[1].startswith("other.example ssh-ed25519 ")  # others kept
    assert lines[2:] == [
        f"[127.0.0.1]:{port} {new_key.export_public_key('openssh').decode().split()[0]} "
        f"{new_key.export_public_key('openssh').decode().split()[1]}"
    ]
    assert oct(own.stat().st_mode & 0o777) == "0o600"
    assert await cmd_servers(argparse.Namespace(action="test", name=name, json=True), loaded) == 0
    fleet.host(name).host_key = old_key  # the old key again (leaked, say): refused now
    await fleet.restart(name)
    with pytest.raises(CollectError) as caught:
        await cmd_servers(argparse.Namespace(action="test", name=name, json=False), loaded)
    assert caught.value.kind == "hostkey_changed"
    # The old key in the user's own known_hosts: fleettop would accept it, and says so.
    user_known_hosts.write_text(
        f"[127.0.0.1]:{port} {' '.join(old_key.export_public_key('openssh').decode().split()[:2])}\n"
    )
    await fleet.change_key(name)
    assert await cmd_trust(trust_args(name, replace=True), loaded) == 0
    err = capsys.readouterr().err
    assert err == (
        f"WARNING: {user_known_hosts} still trusts 1 other key(s) for [127.0.0.1]:{port}, and fleettop accepts them too "
        f"(fleettop never writes that file): remove them with ssh-keygen -R '[127.0.0.1]:{port}' -f {user_known_hosts}\n"
    )
    database = await open_database(loaded.settings)
    try:
        entries = await Repository(database).audit_entries()
    finally:
        await database.close()
    assert [(e.action, e.detail.split(", ", 1)[-1]) for e in reversed(entries)] == [
        ("trust", old_key.get_fingerprint()),
        ("trust", "2 earlier key(s) removed"),
        ("trust", "1 earlier key(s) removed"),
    ]


async def test_untrust_forgets_the_servers_keys(fleet, make_settings, tmp_path, capsys):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    loaded = loaded_for(fleet, make_settings, tmp_path, empty)
    name, port = fleet.hosts[0]
    assert await cmd_trust(trust_args(name, yes=True), loaded) == 0
    assert await cmd_servers(argparse.Namespace(action="test", name=name, json=True), loaded) == 0
    capsys.readouterr()
    own = loaded.settings.data_dir / "known_hosts"
    assert await cmd_untrust(argparse.Namespace(name=name), loaded) == 0
    assert capsys.readouterr().out == f"Untrusted: 1 key(s) for [127.0.0.1]:{port} removed from {own}\n"
    assert own.read_text() == ""
    with pytest.raises(CollectError) as caught:
        await cmd_servers(argparse.Namespace(action="test", name=name, json=False), loaded)
    assert caught.value.kind == "hostkey_unknown"
    capsys.readouterr()
    assert await cmd_untrust(argparse.Namespace(name=name), loaded) == 0
    assert capsys.readouterr().out == f"No key for [127.0.0.1]:{port} in {own}.\n"
    database = await open_database(loaded.settings)
    try:
        entries = await Repository(database).audit_entries()
    finally:
        await database.close()
    assert [(e.action, e.detail) for e in entries][0] == ("untrust", f"1 key(s) for [127.0.0.1]:{port} removed")


async def test_trust_without_yes_needs_a_terminal(fleet, make_settings, tmp_path, monkeypatch):
    loaded = loaded_for(fleet, make_settings, tmp_path, tmp_path / "missing")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(UsageError, match="--yes"):
        await cmd_trust(argparse.Namespace(name=fleet.hosts[0][0], yes=False, replace=False), loaded)
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
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "data"),
                "ssh": {"known_hosts": str(empty), "key_file": str(fleet.client_key_path), "username": fleet.username},
                "servers": [{"name": name, "host": fleet.address, "port": port, "auth": "key"}],
            }
        )
    )
    master, terminal = pty.openpty()

    def own_terminal() -> None:  # a session of its own, with this pty as its controlling terminal
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fleettop",
        "--config",
        str(config),
        "trust",
        name,
        stdin=terminal,
        stdout=terminal,
        stderr=subprocess.DEVNULL,
        preexec_fn=own_terminal,
        cwd=tmp_path,
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


async def test_trust_and_untrust_a_server_named_by_host_name(fleet, make_settings, tmp_path, capsys):
    """A server named by a DNS name, not an address: trust and untrust asked asyncssh to parse
    the name as an IP address ('localhost' does not appear to be an IPv4 or IPv6 address)."""
    user_known_hosts = tmp_path / "known_hosts"
    user_known_hosts.write_text("")
    name, port = fleet.hosts[0]
    settings = make_settings(
        ssh={"known_hosts": str(user_known_hosts), "key_file": str(fleet.client_key_path), "username": fleet.username},
        servers=[{"name": name, "host": "localhost", "port": port, "auth": "key"}],
    )
    loaded = LoadedConfig(settings=settings, path=tmp_path / "config.yaml", exists=False)
    assert await cmd_trust(trust_args(name, yes=True), loaded) == 0
    own = settings.data_dir / "known_hosts"
    assert own.read_text().startswith(f"[localhost]:{port} ssh-ed25519 ")
    assert await cmd_servers(argparse.Namespace(action="test", name=name, json=True), loaded) == 0
    capsys.readouterr()
    assert await cmd_untrust(argparse.Namespace(name=name), loaded) == 0
    assert capsys.readouterr().out.startswith(f"Untrusted: 1 key(s) for [localhost]:{port} removed")
