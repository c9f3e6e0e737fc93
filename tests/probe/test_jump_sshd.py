"""A real OpenSSH sshd as the jump host of simulated hosts (#15): one login on the bastion serves
every host behind it; its host key is checked as strictly as a host's."""

from __future__ import annotations

import asyncio
import shutil

import asyncssh
import pytest
from probe_helpers import SSHD_ONE_AT_A_TIME, sim_server, unavailable

from fleettop.domain import Server
from fleettop.probe import CollectError, Prober
from fleettop.probe.sim import SimFleet

pytestmark = [pytest.mark.sshd, SSHD_ONE_AT_A_TIME]


@pytest.fixture
async def fleet():
    async with SimFleet(50, seed=5) as fleet:  # 50 servers behind one bastion
        yield fleet


def settings_for(make_settings, fleet: SimFleet, real_sshd, tmp_path, bastion_key: asyncssh.SSHKey):
    """Trusting the fleet's keys and `bastion_key` for the sshd; the sshd's client key as ssh.key_file."""
    public = bastion_key.export_public_key("openssh").decode().split()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        fleet.known_hosts_path.read_text() + f"[127.0.0.1]:{real_sshd.port} {public[0]} {public[1]}\n"
    )
    known_hosts.chmod(0o600)
    return make_settings(
        ssh={"known_hosts": str(known_hosts), "key_file": str(real_sshd.key_file), "config": None, "connect_timeout": 5}
    )


async def established_to(port: int) -> int:
    """TCP connections to 127.0.0.1:port established now, as `ss` counts them."""
    if shutil.which("ss") is None:
        unavailable("ss is missing (apt-get install iproute2)")
    process = await asyncio.create_subprocess_exec(
        "ss", "-Htn", "state", "established", f"( dport = :{port} )", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    return len(out.decode().splitlines())


def behind_sshd(fleet: SimFleet, real_sshd) -> list:
    jump = f"{real_sshd.user}@127.0.0.1:{real_sshd.port}"
    return [
        sim_server(fleet, index, username=fleet.username, key_file=str(fleet.client_key_path), jump=jump)
        for index in range(len(fleet.hosts))
    ]


async def test_50_hosts_behind_a_real_sshd_bastion_make_one_login_there(real_sshd, fleet, make_settings, tmp_path):
    prober = Prober(settings_for(make_settings, fleet, real_sshd, tmp_path, real_sshd.host_key))
    logins = real_sshd.accepted_logins()
    servers = behind_sshd(fleet, real_sshd)
    try:
        for _ in range(2):
            results = await asyncio.gather(
                *(prober.collect(server, None) for server in servers), return_exceptions=True
            )
            assert all(not isinstance(result, Exception) for result in results), results
    finally:
        await prober.close()
    assert real_sshd.accepted_logins() - logins == 1
    assert all(fleet.host(name).connections_made == 1 for name, _ in fleet.hosts)


async def test_a_changed_key_on_the_real_bastion_is_refused(real_sshd, fleet, make_settings, tmp_path):
    other = asyncssh.generate_private_key("ssh-ed25519")
    prober = Prober(settings_for(make_settings, fleet, real_sshd, tmp_path, other))
    try:
        with pytest.raises(CollectError) as caught:
            await prober.collect(behind_sshd(fleet, real_sshd)[0], None)
    finally:
        await prober.close()
    assert caught.value.kind == "hostkey_changed"
    assert f"via {real_sshd.user}@127.0.0.1:{real_sshd.port}: host key CHANGED" in str(caught.value)
    assert fleet.host(fleet.hosts[0][0]).connections_made == 0


async def test_aliases_of_the_ssh_config_in_home_reach_hosts_through_the_real_bastion(
    real_sshd, fleet, make_settings, tmp_path, monkeypatch
):
    """~/.ssh/config names the bastion (its user, key and known_hosts file) and the hosts
    behind it by alias; fleettop's own settings name neither."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    public = real_sshd.host_key.export_public_key("openssh").decode().split()
    bastion_known = home / ".ssh" / "bastion_known_hosts"
    bastion_known.write_text(f"[127.0.0.1]:{real_sshd.port} {public[0]} {public[1]}\n")
    (home / ".ssh" / "config").write_text(
        f"Host bastion\n  HostName 127.0.0.1\n  Port {real_sshd.port}\n  User {real_sshd.user}\n"
        f"  IdentityFile {real_sshd.key_file}\n  UserKnownHostsFile {bastion_known}\n"
        "Host web-*\n  ProxyJump bastion\n"
        + "".join(f"Host web-{i}\n  HostName 127.0.0.1\n  Port {port}\n" for i, (_, port) in enumerate(fleet.hosts[:3]))
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    settings = make_settings(ssh={"known_hosts": str(fleet.known_hosts_path), "username": fleet.username})
    assert settings.ssh.config_files == (home / ".ssh" / "config",)  # the default, ~ being this HOME
    prober = Prober(settings)
    logins = real_sshd.accepted_logins()
    servers = [
        Server(id=i + 1, name=f"web-{i}", host=f"web-{i}", auth="key", key_file=str(fleet.client_key_path))
        for i in range(3)
    ]
    try:
        results = await asyncio.gather(*(prober.collect(server, None) for server in servers), return_exceptions=True)
        assert all(not isinstance(result, Exception) for result in results), results
        resolved = await prober.resolved(servers[0])
        assert (resolved["alias"], resolved["port"], resolved["jump"]) == (
            "web-0",
            fleet.hosts[0][1],
            [f"{real_sshd.user}@127.0.0.1:{real_sshd.port}"],
        )
    finally:
        await prober.close()
    assert real_sshd.accepted_logins() - logins == 1
