"""Security review finding 1: a stored password goes only to the host, port and user it was
entered for. Each test points a server at a second trusted host, one that records every
password offered to it (a hostile host in the fleet), by a path that kept the password
before: an edit, a row copied in SQL, a config entry taking over, the form's Test."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
import yaml
from queue_helpers import service_for

from fleettop.probe import CollectError, host_pattern


class _Recording(asyncssh.SSHServer):
    def __init__(self, offered: list[tuple[str, str]]):
        self._offered = offered

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        self._offered.append((username, password))
        return False


class PasswordRecorder:
    """A trusted SSH host (its key in fleettop's own known_hosts) that records passwords."""

    def __init__(self, listener: asyncssh.SSHAcceptor, offered: list[tuple[str, str]]):
        self.listener = listener
        self.port = listener.get_port()
        self.offered = offered


@pytest.fixture
async def recorder(short_dir: Path) -> AsyncIterator[PasswordRecorder]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    offered: list[tuple[str, str]] = []
    listener = await asyncssh.listen(
        "127.0.0.1", 0, server_host_keys=[key], server_factory=lambda: _Recording(offered), config=None
    )
    data_dir = short_dir / "data"
    data_dir.mkdir(mode=0o700, exist_ok=True)
    public = key.export_public_key("openssh").decode().split()
    (data_dir / "known_hosts").write_text(f"{host_pattern('127.0.0.1', listener.get_port())} {public[0]} {public[1]}\n")
    yield PasswordRecorder(listener, offered)
    listener.close()
    await listener.wait_closed()


async def _collect(service, name: str):
    servers = await service.resolve([name])
    await service.collect_now([name])
    await service.wait_collected(servers, timeout=30)
    return (await service.manual_outcomes([servers[0].id]))[0]


async def test_an_edit_to_another_trusted_host_drops_the_password(make_config, fleet, recorder):
    """(a) An edit of the port to another trusted host (the TUI form's call; `servers edit`
    runs the same ServerAdmin.edit): the stored password is dropped, not sent there."""
    data = make_config(servers=[])
    cfg = fleet.server_configs(auth="password")[0]
    async with service_for(data, worker="manual") as service:
        await service.add_server(cfg, secret=fleet.password)
        assert (await _collect(service, cfg.name)).status == "ok"  # the password works where it was entered
        server = await service.edit_server(cfg.name, cfg.model_copy(update={"port": recorder.port}))
        assert not server.has_secret
        detail = (await service.repo.audit_entries(1))[0].detail
        assert (
            detail
            == f"port {cfg.port} -> {recorder.port}, secret removed: set it again with fleettop servers edit {cfg.name} --password"
        )
        outcome = await _collect(service, cfg.name)
    assert outcome.status == "failed" and "no password stored" in outcome.error, outcome
    assert recorder.offered == []


async def test_a_secret_copied_to_another_row_is_refused(make_config, short_dir: Path, fleet, recorder):
    """(b) A database writer without the key copies one row's ciphertext into a row that points
    at their host: the worker refuses it, and nothing reaches that host."""
    data = make_config(servers=[])
    victim = fleet.server_configs(auth="password")[0]
    other = victim.model_copy(update={"name": "other", "port": recorder.port, "auth": "agent"})
    async with service_for(data, worker="manual") as service:
        await service.add_server(victim, secret=fleet.password)
        await service.add_server(other)
    with sqlite3.connect(short_dir / "data" / "fleettop.db") as db:
        db.execute(
            "UPDATE servers SET secret=(SELECT secret FROM servers WHERE name=?), auth='password' WHERE name='other'",
            (victim.name,),
        )
    async with service_for(data, worker="manual") as service:
        outcome = await _collect(service, "other")
        # The same ciphertext with the victim's address but another row's id is refused too.
        with sqlite3.connect(short_dir / "data" / "fleettop.db") as db:
            db.execute("UPDATE servers SET port=? WHERE name='other'", (victim.port,))
        moved_back = await _collect(service, "other")
    assert outcome.status == "failed", outcome
    assert outcome.error.endswith(
        "stored password was entered for another host; enter it again: fleettop servers edit other --password"
    ), outcome.error
    assert moved_back.status == "failed" and "entered for another host" in moved_back.error
    assert recorder.offered == []


async def test_a_config_entry_taking_over_a_server_at_another_host_drops_its_password(
    make_config, short_dir: Path, fleet, recorder
):
    """(c) A `servers:` entry of the same name as a database server, with another host: it
    adopts the server and its history, not its password."""
    victim = fleet.server_configs(auth="password")[0]
    data = make_config(servers=[])
    async with service_for(data, worker=False) as service:
        await service.add_server(victim, secret=fleet.password)
    entry = {
        "name": victim.name,
        "host": "127.0.0.1",
        "port": recorder.port,
        "username": victim.username,
        "auth": "password",
    }
    data = make_config(servers=[])
    data["servers"] = [entry]
    (short_dir / "config.yaml").write_text(yaml.safe_dump(data))
    async with service_for(data, worker="manual") as service:
        server = (await service.resolve([victim.name]))[0]
        assert server.source == "config" and not server.has_secret
        notes = [entry.detail for entry in await service.repo.audit_entries(10)]
        outcome = await _collect(service, victim.name)
    assert any(note.startswith("stored password dropped (port changed)") for note in notes), notes
    assert outcome.status == "failed" and "no password stored" in outcome.error, outcome
    assert recorder.offered == []


async def test_the_forms_test_never_sends_the_stored_password_to_a_typed_host(make_config, fleet, recorder):
    """(d) The add/edit form's Test with no password typed: the stored one is used for its own
    host only; pointed at another, the test asks for it instead."""
    data = make_config(servers=[])
    cfg = fleet.server_configs(auth="password")[0]
    async with service_for(data, worker=False) as service:
        await service.add_server(cfg, secret=fleet.password)
        assert (await service.test_connection(cfg)).cpu_percent is not None  # its own host: the stored password
        with pytest.raises(CollectError) as refused:
            await service.test_connection(cfg.model_copy(update={"port": recorder.port}))
        typed = cfg.model_copy(update={"port": recorder.port})
        with pytest.raises(CollectError) as typed_refused:
            await service.test_connection(typed, "typed-for-this-test")
    assert refused.value.kind == "auth_failed"
    assert str(refused.value) == (
        f"{cfg.name}: the stored password is for {cfg.username}@{cfg.host}:{cfg.port}; type it to test these settings"
    )
    assert typed_refused.value.kind == "auth_failed"  # a typed password goes where it was typed for
    assert recorder.offered == [(cfg.username, "typed-for-this-test")]
