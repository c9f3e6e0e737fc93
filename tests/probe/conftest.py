"""Simulated hosts, and a real OpenSSH sshd on a loopback port, for the probe's integration tests."""

from __future__ import annotations

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
from probe_helpers import unavailable

from fleettop.domain import Server
from fleettop.probe import Prober
from fleettop.probe.sim import SimFleet

SSHD = Path("/usr/sbin/sshd")
SSHD_USER = "fleettop-test"


@pytest.fixture
async def fleet():
    async with SimFleet(3, seed=7) as fleet:
        yield fleet


@pytest.fixture
def fleet_settings(fleet, make_settings):
    """Settings trusting the fleet's host keys and using its client key."""

    def make(**ssh):
        values = {
            "known_hosts": str(fleet.known_hosts_path),
            "key_file": str(fleet.client_key_path),
            "username": fleet.username,
            "command_timeout": 5,
            "connect_timeout": 5,
        }
        values.update(ssh)
        return make_settings(ssh=values)

    return make


@pytest.fixture
async def prober(fleet_settings):
    prober = Prober(fleet_settings())
    yield prober
    await prober.close()


# -- a real sshd -----------------------------------------------------------------------


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ensure_user() -> None:
    try:
        pwd.getpwnam(SSHD_USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", SSHD_USER], check=True)
    # Without PAM, sshd refuses an account whose password is locked ("!"): "*" is no
    # password at all, yet not locked.
    subprocess.run(["usermod", "-p", "*", SSHD_USER], check=True)


@pytest.fixture(scope="session")
def real_sshd():
    """OpenSSH's sshd on 127.0.0.1 (a free high port), with its own host key, config and pid file."""
    with running_sshd(1) as sshd:
        yield sshd


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
    numbers = tuple(_free_port() for _ in range(ports))
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
