"""Against a real OpenSSH sshd on a loopback port: the figures match this machine's own /proc and df."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import asyncssh
import pytest
from probe_helpers import SSHD_ONE_AT_A_TIME, probe_shells

from fleettop.probe import CollectError, Prober
from fleettop.probe.parse import PSEUDO_FILESYSTEMS
from fleettop.probe.ssh import SSHPool, SSHTarget

pytestmark = [pytest.mark.sshd, SSHD_ONE_AT_A_TIME]


@pytest.fixture
async def sshd_prober(real_sshd, make_settings):
    prober = Prober(make_settings(ssh={"known_hosts": str(real_sshd.known_hosts), "key_file": str(real_sshd.key_file)}))
    yield prober
    await prober.close()


def meminfo_kib(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def real_mounts() -> dict[str, str]:
    """Mount point -> device of this machine's real filesystems, each device once (shortest mount)."""
    by_device: dict[str, str] = {}
    for line in Path("/proc/mounts").read_text().splitlines():
        device, mount, fstype = line.split()[:3]
        mount = mount.replace("\\040", " ")
        if fstype in PSEUDO_FILESYSTEMS:
            continue
        try:
            if os.statvfs(mount).f_blocks == 0:
                continue
        except OSError:
            continue
        if device not in by_device or len(mount) < len(by_device[device]):
            by_device[device] = mount
    return {mount: device for device, mount in by_device.items()}


async def local_df() -> dict[str, tuple[int, int]]:
    """Mount point -> (used, available) KiB, as this machine's df reports them."""
    process = await asyncio.create_subprocess_exec("df", "-Pk", stdout=asyncio.subprocess.PIPE)
    output, _ = await process.communicate()
    figures = {}
    for line in output.decode().splitlines()[1:]:
        fields = line.split(None, 5)
        figures[fields[5]] = (int(fields[2]), int(fields[3]))
    return figures


async def test_figures_match_this_machines_proc_and_df(real_sshd, sshd_prober):
    server = real_sshd.server()
    first = await sshd_prober.collect(server, None)
    metrics = first.metrics
    assert metrics.mem_total_bytes == meminfo_kib("MemTotal") * 1024
    assert metrics.swap_total_bytes == meminfo_kib("SwapTotal") * 1024
    assert abs(metrics.load1 - os.getloadavg()[0]) < 1.0
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    assert abs(metrics.uptime_s - uptime) < 5
    procs = sum(1 for entry in os.listdir("/proc") if entry.isdigit())
    assert abs(metrics.procs - procs) < 30
    assert 0 <= metrics.cpu_percent <= 100 and metrics.net_rx_bps >= 0
    expected = real_mounts()
    assert {disk.mount: disk.device for disk in metrics.disks} == expected
    df = await local_df()
    for disk in metrics.disks:
        used, available = df[disk.mount]
        assert disk.percent == pytest.approx(100 * used / (used + available), abs=0.5)
    await asyncio.sleep(0.05)
    second = await sshd_prober.collect(server, first.counters)
    assert second.metrics.uptime_s >= metrics.uptime_s


async def test_one_login_and_one_session_for_many_collections(real_sshd, sshd_prober):
    server = real_sshd.server(name="sshd-reuse")
    logins_before, sessions_before = real_sshd.accepted_logins(), real_sshd.sessions_started()
    previous = None
    started = time.perf_counter()
    for _ in range(20):
        previous = (await sshd_prober.collect(server, previous)).counters
    per_collection = (time.perf_counter() - started) / 20
    await asyncio.sleep(0.2)  # sshd writes its log asynchronously
    assert real_sshd.accepted_logins() - logins_before == 1
    assert real_sshd.sessions_started() - sessions_before == 1
    assert per_collection < 0.5


async def test_a_probe_shell_killed_on_the_server_is_replaced_without_a_failure(real_sshd, sshd_prober):
    server = real_sshd.server(name="sshd-killed-shell")
    before = await probe_shells(real_sshd.user)
    previous = (await sshd_prober.collect(server, None)).counters
    ours = {pid: args for pid, args in (await probe_shells(real_sshd.user)).items() if pid not in before}
    assert list(ours.values()) == ["sh -s -- 1 serve"]  # the login shell made way for it (exec)
    os.kill(next(iter(ours)), signal.SIGKILL)
    sessions_before = real_sshd.sessions_started()
    for _ in range(3):  # at once, before or after the client hears of the kill, and again
        previous = (await sshd_prober.collect(server, previous)).counters
    await asyncio.sleep(0.2)
    assert real_sshd.sessions_started() - sessions_before == 1


async def test_closing_the_pool_leaves_no_probe_shell_on_the_server(real_sshd, sshd_prober):
    before = await probe_shells(real_sshd.user)
    servers = [real_sshd.server(id=index, name=f"sshd-close-{index}") for index in range(3)]
    await asyncio.gather(*(sshd_prober.collect(server, None) for server in servers))
    ours = set(await probe_shells(real_sshd.user)) - set(before)
    assert len(ours) == 3
    await sshd_prober.close()
    for _ in range(50):
        left = ours & set(await probe_shells(real_sshd.user))
        if not left:
            break
        await asyncio.sleep(0.05)
    assert not left


async def test_a_server_collected_seldom_leaves_no_session_open_between_collections(real_sshd, sshd_prober):
    """ssh.keep_open_max_interval (300 s): a server collected every 15 min connects for each
    collection and holds no sshd session or probe shell in between; one collected every
    minute keeps its one connection."""
    before = await probe_shells(real_sshd.user)
    seldom = real_sshd.server(id=1, name="sshd-seldom", interval=900)
    often = real_sshd.server(id=2, name="sshd-often", interval=300)
    logins_before = real_sshd.accepted_logins()
    for _ in range(2):
        await asyncio.gather(*(sshd_prober.collect(server, None) for server in (seldom, often)))
    assert sshd_prober.connections() == 1
    for _ in range(50):
        ours = set(await probe_shells(real_sshd.user)) - set(before)
        if len(ours) == 1:
            break
        await asyncio.sleep(0.05)
    assert len(ours) == 1  # the often-collected server's shell, waiting for its next request
    await asyncio.sleep(0.2)  # sshd writes its log asynchronously
    assert real_sshd.accepted_logins() - logins_before == 3  # seldom twice, often once


async def test_openssh_agrees_to_aes_gcm_the_cheaper_cipher_in_asyncssh(real_sshd, sshd_prober):
    server = real_sshd.server(name="sshd-cipher")
    await sshd_prober.collect(server, None)
    connection = sshd_prober._pool._slots[server.name].connection
    assert (
        connection.get_extra_info("send_cipher") == connection.get_extra_info("recv_cipher") == "aes128-gcm@openssh.com"
    )


async def test_unknown_host_key_against_sshd(real_sshd, make_settings, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    prober = Prober(make_settings(ssh={"known_hosts": str(empty), "key_file": str(real_sshd.key_file)}))
    try:
        with pytest.raises(CollectError) as caught:
            await prober.collect(real_sshd.server(), None)
        fingerprint, _ = await prober.host_key(real_sshd.server())
    finally:
        await prober.close()
    assert caught.value.kind == "hostkey_unknown"
    assert fingerprint == real_sshd.host_key.get_fingerprint()
    assert fingerprint in str(caught.value)


async def test_wrong_user_is_auth_failed(real_sshd, sshd_prober):
    with pytest.raises(CollectError) as caught:
        await sshd_prober.collect(real_sshd.server(username="root"), None)
    assert caught.value.kind == "auth_failed"


async def test_timed_out_command_is_killed_not_left_running(real_sshd, make_settings):
    settings = make_settings(ssh={"known_hosts": str(real_sshd.known_hosts), "command_timeout": 0.5})
    pool = SSHPool(settings.ssh, settings.data_dir, script="exec sleep 37\n")  # a probe that hangs
    target = SSHTarget(
        name="sshd-timeout",
        host="127.0.0.1",
        port=real_sshd.port,
        username=real_sshd.user,
        auth="key",
        key_file=real_sshd.key_file,
    )
    try:
        with pytest.raises(CollectError) as caught:
            await pool.probe(target, False)
    finally:
        await pool.close()
    assert caught.value.kind == "timeout"
    for _ in range(40):
        leftovers = [line for line in await user_processes(real_sshd.user) if "sleep 37" in line]
        if not leftovers:
            break
        await asyncio.sleep(0.05)
    assert leftovers == []


async def user_processes(user: str) -> list[str]:
    """Command lines of the processes running as `user` (sshd's own session processes excluded)."""
    process = await asyncio.create_subprocess_exec("ps", "-u", user, "-o", "args=", stdout=asyncio.subprocess.PIPE)
    output, _ = await process.communicate()
    return [line for line in output.decode().splitlines() if line.strip() and not line.startswith("sshd")]


async def test_under_auth_agent_the_key_file_is_offered_beside_the_agent(
    real_sshd, make_settings, monkeypatch, tmp_path
):
    """As OpenSSH offers IdentityFile keys with the agent's: ssh.key_file (or the server's own
    key_file) logs in under the default `auth: agent` with no agent running at all."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/id_* keys to fall back on
    stranger = tmp_path / "id_stranger"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
    prober = Prober(make_settings(ssh={"known_hosts": str(real_sshd.known_hosts), "key_file": str(real_sshd.key_file)}))
    try:
        result = await prober.collect(real_sshd.server(auth="agent"), None)
        assert result.metrics.mem_total_bytes > 0
        with pytest.raises(CollectError) as caught:
            await prober.collect(real_sshd.server(name="sshd-stranger", auth="agent", key_file=str(stranger)), None)
    finally:
        await prober.close()
    assert caught.value.kind == "auth_failed"
    assert str(caught.value).endswith(
        f"authentication failed as {real_sshd.user} (offered: {stranger}; no ssh-agent: SSH_AUTH_SOCK is unset)"
    )


async def test_auth_key_offers_that_key_alone(real_sshd, make_settings, monkeypatch, tmp_path):
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "agent.sock"))  # named, but never asked under auth: key
    stranger = tmp_path / "id_stranger"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
    prober = Prober(make_settings(ssh={"known_hosts": str(real_sshd.known_hosts), "key_file": str(stranger)}))
    try:
        with pytest.raises(CollectError) as caught:
            await prober.collect(real_sshd.server(auth="key"), None)
    finally:
        await prober.close()
    assert str(caught.value).endswith(f"authentication failed as {real_sshd.user} (offered: {stranger})")
