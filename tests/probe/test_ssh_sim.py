"""The SSH transport against simulated hosts (real asyncssh servers on loopback, no mocks)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import time
from collections.abc import AsyncIterator

import asyncssh
import pytest
from probe_helpers import sim_server, unavailable

from fleettop.probe import CollectError, Prober, record_known_host
from fleettop.probe.sim import SimFleet
from fleettop.secrets import SecretBox


async def test_first_contact_gives_real_rates_then_deltas(fleet, prober):
    server = sim_server(fleet)
    first = await prober.collect(server, None)
    assert first.metrics.cpu_percent is not None and 0 <= first.metrics.cpu_percent <= 100
    assert first.metrics.net_rx_bps > 0
    assert first.metrics.mem_total_bytes == fleet.host(server.name).machine.mem_total_kib * 1024
    await asyncio.sleep(0.1)  # a few jiffies, even on a one-core host
    second = await prober.collect(server, first.counters)
    assert second.metrics.cpu_percent is not None
    assert second.metrics.uptime_s > first.metrics.uptime_s


async def test_one_connection_and_one_probe_session_serve_many_collections(fleet, prober):
    server = sim_server(fleet)
    previous = None
    for _ in range(10):
        previous = (await prober.collect(server, previous)).counters
    host = fleet.host(server.name)
    assert (host.connections_made, host.sessions, host.answers) == (1, 1, 10)


async def test_concurrent_collections_of_one_server_share_one_connect(fleet, prober):
    server = sim_server(fleet)
    await asyncio.gather(*(prober.collect(server, None) for _ in range(5)))
    assert fleet.host(server.name).connections_made == 1


async def test_reconnects_on_the_next_collection_after_the_host_restarts(fleet, prober):
    server = sim_server(fleet)
    await prober.collect(server, None)
    await fleet.stop(server.name)
    with pytest.raises(CollectError) as caught:
        await prober.collect(server, None)
    assert caught.value.kind == "unreachable"
    assert server.name in str(caught.value)
    await fleet.start(server.name)
    await prober.collect(server, None)
    assert fleet.host(server.name).connections_made == 2


async def test_a_restart_between_collections_costs_at_most_one_failure(fleet, prober):
    server = sim_server(fleet)
    await prober.collect(server, None)
    await fleet.restart(server.name)
    try:
        await prober.collect(server, None)
    except CollectError as exc:  # the drop may be noticed only by this exec
        assert exc.kind == "unreachable"
        await prober.collect(server, None)
    assert fleet.host(server.name).connections_made == 2


async def test_command_timeout_closes_the_channel(fleet, fleet_settings):
    prober = Prober(fleet_settings(command_timeout=0.5))
    server = sim_server(fleet)
    host = fleet.host(server.name)
    try:
        await prober.collect(server, None)
        fleet.freeze(server.name)
        started = time.monotonic()
        with pytest.raises(CollectError) as caught:
            await prober.collect(server, None)
        assert caught.value.kind == "timeout"
        assert time.monotonic() - started < 2
        for _ in range(100):  # the host sees its channel closed, not left hanging
            if host.channels_closed_frozen:
                break
            await asyncio.sleep(0.02)
        assert host.channels_closed_frozen == 1
        fleet.freeze(server.name, False)
        await prober.collect(server, None)
    finally:
        await prober.close()


async def test_unknown_host_key_is_refused_naming_host_and_fingerprint(fleet, fleet_settings, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    prober = Prober(fleet_settings(known_hosts=str(empty)))
    server = sim_server(fleet)
    try:
        with pytest.raises(CollectError) as caught:
            await prober.collect(server, None)
    finally:
        await prober.close()
    assert caught.value.kind == "hostkey_unknown"
    message = str(caught.value)
    assert server.name in message and str(server.port) in message
    assert fleet.host(server.name).host_key.get_fingerprint() in message
    assert "\n" not in message


async def test_changed_host_key_is_refused(fleet, prober):
    server = sim_server(fleet)
    await prober.collect(server, None)
    new_key = await fleet.change_key(server.name)
    with pytest.raises(CollectError) as caught:
        await prober.collect(server, None)
    assert caught.value.kind == "hostkey_changed"
    assert new_key.get_fingerprint() in str(caught.value)
    assert fleet.host(server.name).answers == 1


async def test_trusting_a_key_in_the_own_known_hosts_lets_the_next_collection_in(fleet, fleet_settings, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    prober = Prober(fleet_settings(known_hosts=str(empty)))
    server = sim_server(fleet)
    try:
        fingerprint, key = await prober.host_key(server)
        assert fingerprint == fleet.host(server.name).host_key.get_fingerprint()
        assert await prober.trusted_state(server, key) == "unknown"
        record_known_host(prober.own_known_hosts, server.host, server.port, key)
        assert await prober.trusted_state(server, key) == "trusted"
        await prober.collect(server, None)
    finally:
        await prober.close()
    assert not empty.read_text()  # the user's file is never written


async def test_password_auth_works_and_no_password_reaches_any_log(fleet, fleet_settings, caplog):
    settings = fleet_settings(key_file=None)
    box = SecretBox(settings.data_dir)
    prober = Prober(settings, box)
    server = sim_server(fleet, auth="password")
    caplog.set_level(logging.DEBUG)
    asyncssh.set_debug_level(3)
    try:
        await prober.collect(server, None, box.seal(fleet.password, server.id, server))
        other = sim_server(fleet, 1, auth="password")
        with pytest.raises(CollectError) as caught:
            await prober.collect(other, None, box.seal(fleet.password + "-wrong", other.id, other))
    finally:
        asyncssh.set_debug_level(1)
        await prober.close()
    assert caught.value.kind == "auth_failed"
    assert fleet.password not in caplog.text
    # asyncssh's level-3 packet dumps show the password as hex (split across lines), not as text.
    assert fleet.password.encode() not in dumped_packet_bytes(caplog.text)
    assert fleet.password not in str(caught.value)
    assert fleet.password not in repr(await prober._target(server, box.seal(fleet.password, server.id, server)))


def dumped_packet_bytes(log: str) -> bytes:
    """The bytes of every packet dump line ("  00000010: 0e 73 73 68 ...") in a log, joined."""
    rows = re.finditer(r"^\s+[0-9a-f]{8}: ((?:[0-9a-f]{2} ){1,16})", log, re.MULTILINE)
    return bytes.fromhex("".join(row.group(1).replace(" ", "") for row in rows))


async def test_password_auth_without_a_stored_password(fleet, prober):
    with pytest.raises(CollectError) as caught:
        await prober.collect(sim_server(fleet, auth="password"), None)
    assert caught.value.kind == "auth_failed"


async def test_wrong_client_key_is_auth_failed(fleet, fleet_settings, tmp_path):
    stranger = tmp_path / "stranger_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
    prober = Prober(fleet_settings(key_file=str(stranger)))
    try:
        with pytest.raises(CollectError) as caught:
            await prober.collect(sim_server(fleet), None)
    finally:
        await prober.close()
    assert caught.value.kind == "auth_failed"


async def test_passphrase_protected_key_is_decrypted_once(fleet, fleet_settings, tmp_path, monkeypatch):
    locked = tmp_path / "locked_key"
    fleet.client_key.write_private_key(str(locked), passphrase="open sesame", rounds=50)
    settings = fleet_settings(key_file=str(locked))
    box = SecretBox(settings.data_dir)
    reads = []
    real_import = asyncssh.import_private_key
    monkeypatch.setattr(asyncssh, "import_private_key", lambda *args: reads.append(args[1]) or real_import(*args))
    prober = Prober(settings, box)
    try:
        for index in range(3):
            server = sim_server(fleet, index)
            await prober.collect(server, None, box.seal("open sesame", server.id, server))
        other = sim_server(fleet, 0, name="other")
        with pytest.raises(CollectError) as caught:
            await prober.collect(other, None, box.seal("wrong", other.id, other))
    finally:
        await prober.close()
    assert reads == ["open sesame", "wrong"]  # once for the right passphrase, once for the wrong one
    assert caught.value.kind == "auth_failed" and "open sesame" not in str(caught.value)


@contextlib.asynccontextmanager
async def ssh_agent_holding(key: asyncssh.SSHKey, tmp_path) -> AsyncIterator[object]:
    """An ssh-agent of the test's own, holding `key`; yields its socket path."""
    ssh_agent = shutil.which("ssh-agent")
    if ssh_agent is None:
        unavailable("ssh-agent is missing (apt-get install openssh-client)")
    socket_path = tmp_path / "agent.sock"
    agent = await asyncio.create_subprocess_exec(
        ssh_agent, "-D", "-a", str(socket_path), stdout=asyncio.subprocess.DEVNULL
    )
    try:
        # The socket file appears when the agent binds it, a moment before it listens.
        for attempt in range(100):
            try:
                async with asyncssh.connect_agent(str(socket_path)) as agent_client:
                    await agent_client.add_keys([key])
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if attempt == 99:
                    raise
                await asyncio.sleep(0.02)
        yield socket_path
    finally:
        agent.terminate()
        await agent.wait()


async def test_agent_auth_uses_the_ssh_agent(fleet, fleet_settings, tmp_path, monkeypatch):
    async with ssh_agent_holding(fleet.client_key, tmp_path) as socket_path:
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/id_* keys: only the agent can log in
        prober = Prober(fleet_settings(key_file=None))
        try:
            await prober.collect(sim_server(fleet, auth="agent"), None)
        finally:
            await prober.close()
        monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "no-agent.sock"))
        prober = Prober(fleet_settings(key_file=None))
        try:
            with pytest.raises(CollectError) as caught:
                await prober.collect(sim_server(fleet, 1, auth="agent"), None)
        finally:
            await prober.close()
        assert caught.value.kind == "auth_failed"


async def test_refused_port_is_unreachable(fleet, prober):
    await fleet.stop(fleet.hosts[0][0])
    with pytest.raises(CollectError) as caught:
        await prober.collect(sim_server(fleet), None)
    assert caught.value.kind == "unreachable" and "refused" in str(caught.value)


async def test_connects_to_one_host_are_capped(make_settings):
    """max_concurrent_connects is per (host, port), as sshd's MaxStartups: 12 server entries
    on one sshd open at most 3 connections at a time."""
    async with SimFleet(1, seed=3) as fleet:
        settings = make_settings(
            ssh={
                "known_hosts": str(fleet.known_hosts_path),
                "key_file": str(fleet.client_key_path),
                "username": fleet.username,
                "max_concurrent_connects": 3,
            }
        )
        prober = Prober(settings)
        host = sim_server(fleet, 0)
        try:
            await asyncio.gather(
                *(prober.collect(host.model_copy(update={"id": i + 1, "name": f"alias-{i}"}), None) for i in range(12))
            )
        finally:
            await prober.close()
        assert 1 <= fleet.peak_handshaking <= 3
        assert not prober._pool._host_gates  # a host's gate goes once its connects are done


async def test_distinct_hosts_connect_in_parallel(make_settings):
    async with SimFleet(12, seed=3) as fleet:
        settings = make_settings(
            ssh={
                "known_hosts": str(fleet.known_hosts_path),
                "key_file": str(fleet.client_key_path),
                "username": fleet.username,
                "max_concurrent_connects": 1,
            }
        )
        prober = Prober(settings)
        try:
            await asyncio.gather(*(prober.collect(sim_server(fleet, i), None) for i in range(12)))
        finally:
            await prober.close()
        assert fleet.peak_handshaking > 1


async def test_ipv6_loopback_host(make_settings):
    async with SimFleet(1, address="::1") as fleet:
        settings = make_settings(
            ssh={
                "known_hosts": str(fleet.known_hosts_path),
                "key_file": str(fleet.client_key_path),
                "username": fleet.username,
            }
        )
        prober = Prober(settings)
        try:
            result = await prober.collect(sim_server(fleet), None)
        finally:
            await prober.close()
    assert result.metrics.procs > 0


async def test_a_simulated_reboot_resets_uptime_and_skips_the_delta(fleet, prober):
    server = sim_server(fleet)
    first = await prober.collect(server, None)
    fleet.reboot(server.name)
    after = await prober.collect(server, first.counters)
    assert after.metrics.uptime_s < first.metrics.uptime_s
    assert after.metrics.cpu_percent is None and after.metrics.net_rx_bps is None


async def test_a_fleet_of_200_hosts_in_two_rounds(make_settings):
    started = time.perf_counter()
    async with SimFleet(200, seed=11) as fleet:
        start_up = time.perf_counter() - started
        settings = make_settings(
            ssh={
                "known_hosts": str(fleet.known_hosts_path),
                "key_file": str(fleet.client_key_path),
                "username": fleet.username,
                "max_concurrent_connects": 32,
            }
        )
        prober = Prober(settings)
        servers = [sim_server(fleet, i) for i in range(200)]
        try:
            first = await asyncio.gather(*(prober.collect(s, None) for s in servers))
            second = await asyncio.gather(*(prober.collect(s, r.counters) for s, r in zip(servers, first)))
        finally:
            await prober.close()
    assert start_up < 2
    assert sum(host.connections_made for host in map(fleet.host, (s.name for s in servers))) == 200
    busy = [r.metrics for r in second if r.metrics.cpu_percent is not None and r.metrics.cpu_percent > 75]
    full = [r.metrics for r in second if r.metrics.disk_percent > 85]
    assert busy and full  # the fleet is varied: some busy hosts, some near-full disks


async def test_a_key_file_under_an_unknown_users_home_is_auth_failed(fleet, prober):
    with pytest.raises(CollectError) as caught:
        await prober.collect(sim_server(fleet, key_file="~nosuchuser-fleettop/id_ed25519"), None)
    assert caught.value.kind == "auth_failed" and "no such user" in str(caught.value)


async def test_under_auth_agent_a_locked_key_file_is_left_to_the_agent(fleet, fleet_settings, tmp_path, monkeypatch):
    """ssh.key_file names a passphrase-protected key that the agent holds unlocked: the agent
    logs in (the file, whose passphrase is not stored, is left out, not a failure)."""
    locked = tmp_path / "locked_key"
    fleet.client_key.write_private_key(str(locked), passphrase="open sesame", rounds=50)
    async with ssh_agent_holding(fleet.client_key, tmp_path) as socket_path:
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        monkeypatch.setenv("HOME", str(tmp_path))
        prober = Prober(fleet_settings(key_file=str(locked)))
        try:
            await prober.collect(sim_server(fleet, auth="agent"), None)
        finally:
            await prober.close()
