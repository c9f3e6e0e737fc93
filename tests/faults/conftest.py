"""The fault suite: real processes stopped, killed and restarted; hostile hosts and users.

It reuses the queue tests' fixtures (a Redis key prefix of its own, a short data_dir,
a SimFleet, a config file) and helpers (fleettop subprocesses, waiting), and adds
private servers it may stop at will: a redis-server on a port of its own, and a
PostgreSQL instance of its own (initdb + pg_ctl, run as the `postgres` user when
the tests run as root). The shared Redis and PostgreSQL are never stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

QUEUE_TESTS = Path(__file__).parent.parent / "queue"
sys.path.insert(0, str(QUEUE_TESTS))  # queue_helpers

_spec = importlib.util.spec_from_file_location("queue_conftest", QUEUE_TESTS / "conftest.py")
_queue_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_queue_conftest)
prefix = _queue_conftest.prefix
short_dir = _queue_conftest.short_dir
fleet = _queue_conftest.fleet
make_config = _queue_conftest.make_config

from app.redis_server import redis_server_binary  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(reason + " (CI=true: a missing tool fails the run)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test's own on 127.0.0.1:<port>, stopped and started at will
    (restarted empty: nothing is saved, as a crashed or replaced Redis would be)."""

    def __init__(self, directory: Path, password: str | None = None, extra: tuple[str, ...] = ()):
        self.directory = directory
        self.port = free_port()
        self.password = password
        self.extra = extra
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.directory), "--logfile", str(self.directory / f"redis-{self.port}.log"), *self.extra]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return
            time.sleep(0.05)
        raise RuntimeError(f"private redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # a crash, not a polite shutdown
            self.process.wait(10)
        self.process = None


@pytest.fixture
def private_redis(short_dir: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(short_dir)
    server.start()
    yield server
    server.stop()


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
        subprocess.run(command, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.directory} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.directory / "pg.log"), "-w", "-t", "30", "start")

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if not PG_BIN or not (PG_BIN[-1] / "initdb").exists():
        unavailable("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            unavailable("running as root and no `postgres` user to run a private PostgreSQL")
        user = "postgres"
    directory = Path(tempfile.mkdtemp(prefix="ftpg-"))
    if user:
        shutil.chown(directory, user)
    server = PrivatePostgres(directory, user)
    server.init()
    server.start()
    yield server
    with contextlib.suppress(Exception):
        server.stop()
    shutil.rmtree(directory, ignore_errors=True)


async def wait_for(check, timeout: float, step: float = 0.2):
    """queue_helpers.wait_until, accepting plain (non-async) checks too."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(step)
