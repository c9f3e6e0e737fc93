"""Helpers the probe tests share (a module of its own: conftest.py cannot be imported)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest
from ports import free_ports

from fleettop.domain import Server
from fleettop.probe.sim import SimFleet

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> None:
    """Skip on a developer's machine; fail in CI, where every test must run (as tests/conftest.py does)."""
    if IN_CI:
        pytest.fail(reason + " (CI=true: a missing tool fails the run)")
    pytest.skip(reason)


def sim_server(fleet: SimFleet, index: int = 0, **fields) -> Server:
    """Simulated host number `index` as a server to collect (key auth unless overridden), every
    minute: its connection is kept open between collections (ssh.keep_open_max_interval)."""
    name, port = fleet.hosts[index]
    values = {"id": index + 1, "name": name, "host": fleet.address, "port": port, "auth": "key", "interval": 60}
    values.update(fields)
    return Server(**values)


async def probe_shells(user: str) -> dict[int, str]:
    """pid -> command line of the user's probe shells (`sh -s -- N serve`)."""
    process = await asyncio.create_subprocess_exec("ps", "-u", user, "-o", "pid=,args=", stdout=asyncio.subprocess.PIPE)
    output, _ = await process.communicate()
    shells = (line.strip().split(None, 1) for line in output.decode().splitlines())
    return {int(pid): args for pid, args in shells if args.endswith(" serve")}


# -- a real sshd -----------------------------------------------------------------------

SSHD = Path("/usr/sbin/sshd")
SSHD_USER = "fleettop-test"
# The tests of a real sshd all log in as SSHD_USER and count that user's processes and
# connections (probe_shells, ss): under pytest-xdist (--dist loadgroup) they run in one
# worker, one after another, and their session sshd starts once.
SSHD_ONE_AT_A_TIME = pytest.mark.xdist_group("sshd")


@dataclass
class RealSSHD:
    port: int
    user: str
    key_file: Path
    known_hosts: Path
    host_key: asyncssh.SSHKey
    log: Path
    ports: tuple[int, ...] = ()  # every port it listens on (port first): one "host" each

    def server(self, **fields) -> Server:
        """A server on this sshd, collected every minute: its connection is kept open."""
        values = {
            "id": 1,
            "name": "sshd",
            "host": "127.0.0.1",
            "port": self.port,
            "username": self.user,
            "auth": "key",
            "interval": 60,
        }
        values.update(fields)
        return Server(**values)

    def accepted_logins(self) -> int:
        return self.log.read_text().count(f"Accepted publickey for {self.user}")

    def sessions_started(self) -> int:
        return self.log.read_text().count(f"Starting session: command for {self.user}")


def _ensure_user() -> None:
    try:
        pwd.getpwnam(SSHD_USER)
    except KeyError:
        added = subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", SSHD_USER])
        if added.returncode != 0:
            pwd.getpwnam(SSHD_USER)  # added meanwhile by another test process, or the failure stands
    # Without PAM, sshd refuses an account whose password is locked ("!"): "*" is no
    # password at all, yet not locked.
    subprocess.run(["usermod", "-p", "*", SSHD_USER], check=True)


@contextlib.contextmanager
def running_sshd(ports: int, extra: str = "") -> Iterator[RealSSHD]:
    """An sshd listening on `ports` free loopback ports (its known_hosts names each: a fleet of
    that many hosts, told apart by port), `extra` appended to its config."""
    if not SSHD.exists():
        unavailable(f"{SSHD} is missing (apt-get install openssh-server)")
    if os.geteuid() != 0:
        unavailable("the sshd tests create a user and start sshd: they need root")
    _ensure_user()
    # sshd reads AuthorizedKeysFile as the user: the directory must be world-traversable.
    workdir = Path(tempfile.mkdtemp(prefix="fleettop-sshd-"))
    workdir.chmod(0o755)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key.write_private_key(str(workdir / "host_ed25519"))
    (workdir / "host_ed25519").chmod(0o600)
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key.write_private_key(str(workdir / "client_key"))
    (workdir / "client_key").chmod(0o600)
    client_key.write_public_key(str(workdir / "authorized_keys"))
    (workdir / "authorized_keys").chmod(0o644)
    numbers = tuple(free_ports(ports))
    public = host_key.export_public_key("openssh").decode().split()
    (workdir / "known_hosts").write_text("".join(f"[127.0.0.1]:{port} {public[0]} {public[1]}\n" for port in numbers))
    # One sshd listens on 16 sockets at most (OpenSSH's MAX_LISTEN_SOCKS): one per 16 ports.
    chunks = [numbers[start : start + 16] for start in range(0, len(numbers), 16)]
    configs = []
    for index, chunk in enumerate(chunks):
        config = workdir / f"sshd_config{index or ''}"
        port_lines = "".join(f"Port {port}\n" for port in chunk)
        config.write_text(
            f"""{port_lines}ListenAddress 127.0.0.1
HostKey {workdir / "host_ed25519"}
AuthorizedKeysFile {workdir / "authorized_keys"}
PidFile {workdir / f"sshd{index or ''}.pid"}
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowUsers {SSHD_USER}
LogLevel VERBOSE
{extra}"""
        )
        configs.append(config)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    check = subprocess.run([str(SSHD), "-t", "-f", str(configs[0])], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.fail(f"sshd rejects its test config: {check.stderr.strip()}")
    log = workdir / "sshd.log"
    processes = []
    with log.open("w") as log_handle:
        for config in configs:
            processes.append(
                subprocess.Popen(
                    [str(SSHD), "-D", "-e", "-f", str(config)], stdout=log_handle, stderr=subprocess.STDOUT
                )
            )
    try:
        deadline = time.monotonic() + 10
        for port in numbers:
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if any(process.poll() is not None for process in processes) or time.monotonic() > deadline:
                        pytest.fail(f"sshd did not start: {log.read_text().strip()[-500:]}")
                    time.sleep(0.05)
        yield RealSSHD(numbers[0], SSHD_USER, workdir / "client_key", workdir / "known_hosts", host_key, log, numbers)
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
