"""Jump hosts against simulated hosts: one of them, a bastion, forwards to the others (#15)."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from probe_helpers import sim_server, unavailable

from fleettop.domain import Server
from fleettop.probe import CollectError, Prober
from fleettop.probe.sim import SimFleet
from fleettop.probe.ssh import BASTION_RETRY_AFTER, SSHPool, SSHTarget
from fleettop.timing import scaled

BASTION = 0
TARGETS = (1, 2, 3)


@pytest.fixture
async def fleet():
    async with SimFleet(5, seed=11) as fleet:
        fleet.make_jump_host(fleet.hosts[BASTION][0])
        yield fleet


def bastion_spec(fleet: SimFleet) -> str:
    return f"{fleet.username}@{fleet.address}:{fleet.hosts[BASTION][1]}"


def behind(fleet: SimFleet, jump: str | None = None):
    return [sim_server(fleet, index, jump=jump or bastion_spec(fleet)) for index in TARGETS]


async def collect_all(prober: Prober, servers, previous=None) -> list:
    return await asyncio.gather(
        *(prober.collect(server, previous[i] if previous else None) for i, server in enumerate(servers)),
        return_exceptions=True,
    )


async def test_hosts_behind_a_bastion_share_its_one_kept_connection(fleet, prober):
    servers = behind(fleet)
    first = await collect_all(prober, servers)
    assert all(not isinstance(result, Exception) for result in first), first
    second = await collect_all(prober, servers, [result.counters for result in first])
    assert all(not isinstance(result, Exception) for result in second), second
    bastion = fleet.host(fleet.hosts[BASTION][0])
    assert (bastion.connections_made, bastion.forwards, bastion.sessions) == (1, 3, 0)
    for index in TARGETS:  # the kept probe session works the same through the bastion
        target = fleet.host(fleet.hosts[index][0])
        assert (target.connections_made, target.sessions, target.answers) == (1, 1, 2)
    direct = sim_server(fleet, 4)
    await prober.collect(direct, None)
    assert bastion.forwards == 3  # a server without a jump host connects directly


async def test_a_bastion_that_fails_is_named_in_each_error_and_tried_once_per_round(fleet, prober):
    servers = behind(fleet)
    await collect_all(prober, servers)
    name, port = fleet.hosts[BASTION]
    await fleet.stop(name)
    attempts = 0

    def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        attempts += 1
        writer.close()

    # The bastion's port now takes a TCP connection and drops it at once: each attempt counted.
    stand_in = await asyncio.start_server(refuse, fleet.address, port)
    try:
        # Round 0 may find the kept connections lost (and say so, via the bastion), or already
        # closed and try the bastion again: from then on, one try per round.
        for round_number in (0, 1, 2):
            await asyncio.sleep(scaled(BASTION_RETRY_AFTER))  # rounds apart, as collections are
            before = attempts
            results = await collect_all(prober, servers)
            for server, result in zip(servers, results):
                assert isinstance(result, CollectError) and result.kind == "unreachable"
                assert str(result).startswith(f"{server.name} (127.0.0.1:{server.port}): via {bastion_spec(fleet)}: ")
            if round_number:
                assert attempts - before == 1  # one reconnect per round, not one per host behind it
    finally:
        stand_in.close()
        await stand_in.wait_closed()
    await fleet.start(name)
    await asyncio.sleep(scaled(BASTION_RETRY_AFTER))
    results = await collect_all(prober, servers)
    assert all(not isinstance(result, Exception) for result in results), results
    assert fleet.host(name).connections_made == 2


async def test_a_changed_bastion_key_is_refused_for_every_host_behind_it(fleet, prober):
    name = fleet.hosts[BASTION][0]
    new_key = await fleet.change_key(name)
    results = await collect_all(prober, behind(fleet))
    for result in results:
        assert isinstance(result, CollectError) and result.kind == "hostkey_changed"
        assert f"via {bastion_spec(fleet)}: host key CHANGED, now ssh-ed25519 {new_key.get_fingerprint()}" in str(
            result
        )
    for index in TARGETS:
        assert fleet.host(fleet.hosts[index][0]).connections_made == 0


async def test_a_bastion_that_cannot_reach_the_host_says_so(fleet, prober):
    target = sim_server(fleet, 1, jump=bastion_spec(fleet))
    await fleet.stop(target.name)
    with pytest.raises(CollectError) as caught:
        await prober.collect(target, None)
    assert caught.value.kind == "unreachable"
    assert f"{bastion_spec(fleet)} cannot reach it" in str(caught.value)


async def test_a_jump_naming_another_server_goes_through_that_server(fleet, fleet_settings):
    bastion = sim_server(fleet, BASTION, username=fleet.username)
    servers = {bastion.name: bastion}

    async def find_server(name: str):
        return servers.get(name)

    prober = Prober(fleet_settings(), find_server=find_server)
    try:
        target = sim_server(fleet, 1, jump=bastion.name)
        await prober.collect(target, None)
        assert (await prober.resolved(target))["jump"] == [f"{fleet.username}@{fleet.address}:{bastion.port}"]
    finally:
        await prober.close()
    assert fleet.host(bastion.name).forwards == 1


async def test_a_jump_host_through_another(fleet, prober):
    """A two-hop chain: the second bastion is reached through the first."""
    fleet.make_jump_host(fleet.hosts[4][0])
    chain = f"{bastion_spec(fleet)},{fleet.username}@{fleet.address}:{fleet.hosts[4][1]}"
    await prober.collect(sim_server(fleet, 1, jump=chain), None)
    assert fleet.host(fleet.hosts[BASTION][0]).forwards == 1  # to the second bastion
    assert fleet.host(fleet.hosts[4][0]).forwards == 1  # to the host


async def test_an_ssh_config_alias_with_its_proxyjump_and_jump_none_over_it(fleet, fleet_settings, tmp_path):
    (bastion_name, bastion_port), (_, target_port) = fleet.hosts[BASTION], fleet.hosts[1]
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host bastion\n  HostName 127.0.0.1\n  Port {bastion_port}\n  User {fleet.username}\n"
        "Host web-*\n  ProxyJump bastion\n  ConnectTimeout 3\n"
        f"Host web-1\n  HostName 127.0.0.1\n  Port {target_port}\n"
    )
    prober = Prober(fleet_settings(config=str(config)))
    server = Server(id=1, name="web-1", host="web-1", auth="key")  # port 22: the ssh config's Port applies
    try:
        assert await prober.resolved(server) == {
            "address": "127.0.0.1",
            "port": target_port,
            "alias": "web-1",
            "user": fleet.username,
            "auth": f"key {fleet.client_key_path}",
            "jump": [f"{fleet.username}@127.0.0.1:{bastion_port}"],
        }
        await prober.collect(server, None)
        assert fleet.host(bastion_name).forwards == 1
        direct = server.model_copy(update={"name": "web-1-direct", "jump": "none"})
        await prober.collect(direct, None)
        assert fleet.host(bastion_name).forwards == 1  # jump: none wins over the ProxyJump
        assert fleet.host(fleet.hosts[1][0]).connections_made == 2
    finally:
        await prober.close()


@pytest.fixture
async def ssh_agent(fleet, tmp_path, monkeypatch):
    """OpenSSH's ssh-agent, started here with the fleet's client key loaded; SSH_AUTH_SOCK set."""
    if shutil.which("ssh-agent") is None or shutil.which("ssh-add") is None:
        unavailable("ssh-agent is missing (apt-get install openssh-client)")
    socket_path = tmp_path / "agent.sock"
    agent = await asyncio.create_subprocess_exec(
        "ssh-agent", "-D", "-a", str(socket_path), stdout=asyncio.subprocess.DEVNULL
    )
    try:
        for _ in range(200):
            if socket_path.exists():
                break
            await asyncio.sleep(0.01)
        add = await asyncio.create_subprocess_exec(
            "ssh-add", "-q", str(fleet.client_key_path), env={"SSH_AUTH_SOCK": str(socket_path)}
        )
        assert await add.wait() == 0
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        yield socket_path
    finally:
        agent.terminate()
        await agent.wait()


async def test_agent_auth_for_the_bastion_and_the_host(fleet, fleet_settings, ssh_agent):
    prober = Prober(fleet_settings(key_file=None))  # nothing but the agent holds the key
    try:
        server = sim_server(fleet, 1, auth="agent", jump=bastion_spec(fleet))
        await prober.collect(server, None)
        assert (await prober.resolved(server))["auth"] == "agent, ~/.ssh/id_*"
    finally:
        await prober.close()
    assert fleet.host(fleet.hosts[BASTION][0]).forwards == 1


async def test_without_an_agent_the_key_file_serves_and_its_absence_is_named(fleet, fleet_settings, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    server = sim_server(fleet, 1, auth="agent", jump=bastion_spec(fleet))
    prober = Prober(fleet_settings())  # ssh.key_file: the fleet's key, for the bastion and the host
    try:
        await prober.collect(server, None)
    finally:
        await prober.close()
    prober = Prober(fleet_settings(key_file=None))
    try:
        with pytest.raises(CollectError) as caught:
            await prober.collect(server, None)
    finally:
        await prober.close()
    assert caught.value.kind == "auth_failed"
    assert (
        f"via {bastion_spec(fleet)}: authentication failed as {fleet.username} (offered: ~/.ssh/id_*; no ssh-agent"
        in str(caught.value)
    )


async def test_the_host_key_of_a_host_behind_a_bastion_is_its_own(fleet, prober):
    """`fleettop trust` of a host behind a bastion fetches that host's key, through the bastion."""
    server = sim_server(fleet, 1, jump=bastion_spec(fleet))
    fingerprint, key = await prober.host_key(server)
    assert key == fleet.host(server.name).host_key.convert_to_public()
    assert fingerprint != fleet.host(fleet.hosts[BASTION][0]).host_key.get_fingerprint()
    assert await prober.trusted_state(server, key) == "trusted"
    assert fleet.host(fleet.hosts[BASTION][0]).forwards == 1


async def test_a_jump_hosts_own_host_block_sets_its_timeouts(fleet_settings, tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text(
        "Host bastion\n  HostName 127.0.0.1\n  ConnectTimeout 3\n  ServerAliveInterval 7\n"
        "Host web\n  ProxyJump bastion\n"
    )
    settings = fleet_settings(config=str(config))
    pool = SSHPool(settings.ssh, settings.data_dir)
    route = await pool.route(SSHTarget(name="web", host="web", port=22, username=None, auth="agent"))
    (hop,) = route.hops
    assert (hop.address, hop.connect_timeout, hop.keepalive_interval) == ("127.0.0.1", 3.0, 7.0)
    assert (route.connect_timeout, route.keepalive_interval) == (5.0, 30.0)  # the server's own: ssh.*


async def test_a_proxyjump_loop_in_the_ssh_config_is_one_line_not_a_hang(fleet_settings, tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host gw\n  HostName 127.0.0.1\nHost *\n  ProxyJump gw\n")  # gw jumps through itself
    prober = Prober(fleet_settings(config=str(config)))
    try:
        with pytest.raises(CollectError) as caught:
            await prober.collect(Server(id=1, name="web", host="web", auth="key"), None)
    finally:
        await prober.close()
    assert caught.value.kind == "unreachable"
    assert (
        str(caught.value)
        == "web (web:22): ProxyJump 'gw': more than 8 jump hosts (a ProxyJump loop in the ssh config?)"
    )


async def test_a_user_known_hosts_file_of_dev_null_trusts_nothing_and_breaks_nothing(fleet, fleet_settings, tmp_path):
    (_, port), (_, other_port) = fleet.hosts[1], fleet.hosts[2]
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host lab\n  HostName 127.0.0.1\n  Port {port}\n  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n"
    )
    prober = Prober(fleet_settings(config=str(config), known_hosts=str(tmp_path / "empty")))
    try:
        with pytest.raises(CollectError) as caught:  # its key is in no file fleettop reads: refused
            await prober.collect(Server(id=1, name="lab", host="lab", auth="key"), None)
        assert caught.value.kind == "hostkey_unknown"
        other = Server(id=2, name="other", host="127.0.0.1", port=other_port, auth="key")
        with pytest.raises(CollectError) as caught:  # the others are judged as before, not broken
            await prober.collect(other, None)
        assert caught.value.kind == "hostkey_unknown" and "known_hosts cannot be read" not in str(caught.value)
    finally:
        await prober.close()
