"""The process lifecycle around the embedded Redis, with real processes: the redis-server
killed (SIGKILL, as the OOM killer would) under `--headless` workers and under a dashboard
in a pty, the dashboard stopped by SIGTERM and SIGHUP, and commands that would write into a
Redis that dies with them. The embedded Redis lives in each test's own data_dir."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import signal
import sqlite3
import struct
import subprocess
import termios
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import forked_fleettop
import pytest
import redis
from queue_helpers import Fleettop, run_fleettop, wait_until

from fleettop.redis_server import redis_server_binary

pytestmark = pytest.mark.slow

SERVER = "sim-0001"
ANSI = re.compile(rb"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
ALT_SCREEN_OFF = b"\x1b[?1049l"
MOUSE_OFF = b"\x1b[?1000l"


def embedded_config(make_config, prefix: str) -> dict:
    """One simulated server every 10 s (the shortest interval), on the embedded Redis."""
    return make_config(servers=[SERVER], interval=10, redis={"url": None, "prefix": prefix})


class Embedded:
    """The files of the embedded Redis in a data_dir, read as a user would (ps, ls)."""

    def __init__(self, data_dir: Path):
        self.directory = data_dir / "redis"
        self.database = data_dir / "fleettop.db"

    def pid(self) -> int | None:
        try:
            return int((self.directory / "redis.pid").read_text())
        except (OSError, ValueError):
            return None

    def leases(self) -> list[str]:
        leases = self.directory / "leases"
        return sorted(path.name for path in leases.iterdir()) if leases.is_dir() else []

    def servers_running(self) -> list[int]:
        """Every redis-server process serving this data_dir's socket."""
        found = subprocess.run(
            ["pgrep", "-f", f"redis-server.*{self.directory}/redis.sock"], capture_output=True, text=True
        )
        return [int(pid) for pid in found.stdout.split()]

    def workers_beating(self, prefix: str) -> int:
        """Workers whose heartbeat (fleettop.cache: <prefix>workers, id -> expiry) is current."""
        client = redis.Redis(unix_socket_path=str(self.directory / "redis.sock"))
        try:
            return client.zcount(prefix + "workers", time.time(), "+inf")
        except redis.RedisError:
            return 0
        finally:
            client.close()

    def samples_since(self, moment: datetime) -> int:
        stamp = moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        with contextlib.closing(sqlite3.connect(self.database, timeout=5)) as db:
            try:
                return db.execute("SELECT count(*) FROM samples WHERE collected_at > ?", (stamp,)).fetchone()[0]
            except sqlite3.OperationalError:  # not created yet
                return 0

    @contextlib.contextmanager
    def locked(self):
        """Hold the start/stop lock, as a lease holder busy starting it would: nobody restarts it meanwhile."""
        fd = os.open(self.directory / "lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


@pytest.fixture(autouse=True)
def no_redis_left(short_dir: Path):
    """A test that failed may leave its embedded redis-server behind: stop it (by pid)."""
    yield
    for pid in Embedded(short_dir / "data").servers_running():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie of ours is not running
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    return False


class PtyDashboard:
    """`fleettop` (the dashboard) on a pseudo-terminal of its own, as a session leader with
    the pty as its controlling terminal (so closing the master is a hang-up), 120x35."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 35, 120, 0, 0))
        self.process = forked_fleettop.Popen(
            ["--config", str(config), *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=config.parent,
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "35", **(env or {})},
            session=True,
        )
        os.close(slave)
        self.master: int | None = master
        self.output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while self.master is not None:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the other side closed
                return
            if not chunk:
                return
            self.output += chunk

    def text_since(self, offset: int) -> str:
        return ANSI.sub(b"", bytes(self.output[offset:])).decode(errors="replace")

    def press(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def hang_up(self) -> None:
        """Close the terminal (an ssh session dropped, `tmux kill-session`)."""
        master, self.master = self.master, None
        os.close(master)

    async def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"the dashboard did not exit within {timeout}s: {self.text_since(0)[-1500:]!r}")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # the reader takes the last bytes
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self.master is not None:
            self.hang_up()


@contextlib.contextmanager
def dashboard(config: Path, *args: str, env: dict[str, str] | None = None):
    shown = PtyDashboard(config, *args, env=env)
    try:
        yield shown
    finally:
        shown.kill()


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


async def shows(screen: PtyDashboard, text: str, since: int, timeout: float) -> None:
    await wait_until(lambda: text in screen.text_since(since), timeout, step=0.1)


async def test_redis_killed_under_two_headless_workers_exactly_one_restarts_it(
    make_config, short_dir: Path, fleet, prefix
):
    """The embedded redis-server SIGKILLed under two `--headless` workers sharing it: one of
    them starts it again, the other reconnects, and collection resumes by itself (the
    schedule is rebuilt by the reconcile: the new server is empty)."""
    data = embedded_config(make_config, prefix)
    config = short_dir / "config.yaml"
    embedded = Embedded(Path(data["data_dir"]))
    workers = [await Fleettop.start(config, "--headless", name=f"headless{n}") for n in (1, 2)]
    try:
        await wait_until(lambda: len(embedded.leases()) == 2, 30)
        await wait_until(lambda: embedded.samples_since(datetime(2000, 1, 1, tzinfo=timezone.utc)) > 0, 30)
        first = embedded.pid()
        os.kill(first, signal.SIGKILL)
        killed_at, killed_wall = time.monotonic(), datetime.now(timezone.utc)
        await wait_until(lambda: (pid := embedded.pid()) not in (None, first) and alive(pid), 10)
        restarted_in = time.monotonic() - killed_at
        await wait_until(lambda: embedded.samples_since(killed_wall) > 0, 30, step=0.2)
        resumed_in = time.monotonic() - killed_at
        assert embedded.servers_running() == [embedded.pid()]  # one server: nobody started a second
        for worker in workers:
            assert worker.process.returncode is None, worker.text()[-2000:]
        # Both reconnected: each has its heartbeat in the new, empty server.
        await wait_until(lambda: embedded.workers_beating(prefix) == 2, 10)
        restarts = sum(worker.text().count("started it again") for worker in workers)
        assert restarts == 1, [worker.text()[-1500:] for worker in workers]
        # The first out leaves the server to the other; the last one out stops it.
        assert await workers[0].stop() == 0
        assert embedded.servers_running() == [embedded.pid()] and len(embedded.leases()) == 1
        server = embedded.pid()
        assert await workers[1].stop() == 0
        await wait_until(lambda: not alive(server), 5)
        assert embedded.leases() == []
    finally:
        for worker in workers:
            await worker.stop(signal.SIGKILL)
    for worker in workers:
        assert "Traceback" not in worker.text(), worker.text()[-3000:]
    print(f"redis-server started again {restarted_in:.1f}s after the kill; a new sample {resumed_in:.1f}s after it")


async def test_redis_killed_under_a_dashboard_shows_it_then_resumes(make_config, short_dir: Path, fleet, prefix):
    """The dashboard owns the embedded Redis (holds its only lease). Killed while its restart
    is held up: the header says redis ✗ (not "no worker") and the queue counts are unknown;
    then it is started again, collection resumes, and `q` quits at once."""
    data = embedded_config(make_config, prefix)
    config = short_dir / "config.yaml"
    embedded = Embedded(Path(data["data_dir"]))
    with dashboard(config) as screen:
        await shows(screen, "redis ✓", 0, 30)
        await wait_until(lambda: embedded.samples_since(datetime(2000, 1, 1, tzinfo=timezone.utc)) > 0, 30)
        first = embedded.pid()
        with embedded.locked():
            mark = len(screen.output)
            os.kill(first, signal.SIGKILL)
            killed_at, killed_wall = time.monotonic(), datetime.now(timezone.utc)
            await shows(screen, "redis ✗", mark, 10)
            await shows(screen, "waiting –", mark, 5)
            await asyncio.sleep(2)
            assert "no worker" not in screen.text_since(mark)
        await wait_until(lambda: embedded.samples_since(killed_wall) > 0, 30, step=0.2)
        resumed_in = time.monotonic() - killed_at
        await shows(screen, "redis ✓", mark, 10)
        assert embedded.servers_running() == [embedded.pid()] and embedded.pid() != first
        mark = len(screen.output)
        screen.press(b"q")
        pressed = time.monotonic()
        assert await screen.wait(15) == 0, screen.text_since(mark)[-2000:]
        quit_in = time.monotonic() - pressed
    assert not alive(embedded.pid() or 0) and embedded.servers_running() == []
    assert embedded.leases() == []
    print(f"dashboard: a new sample {resumed_in:.1f}s after the kill (restart held ~2 s); q took {quit_in:.1f}s")


async def test_q_quits_at_once_when_redis_is_gone(make_config, short_dir: Path, fleet, prefix):
    """The embedded Redis killed, and it cannot be started again (a redis-server on PATH that
    now fails): the header shows it, and `q` exits at once rather than after ~20 s of retries."""
    data = embedded_config(make_config, prefix)
    embedded = Embedded(Path(data["data_dir"]))
    binaries = short_dir / "bin"
    binaries.mkdir()
    broken = short_dir / "broken"
    wrapper = binaries / "redis-server"
    wrapper.write_text(f'#!/bin/sh\n[ -e {broken} ] && exit 1\nexec {redis_server_binary()} "$@"\n')
    wrapper.chmod(0o755)
    with dashboard(short_dir / "config.yaml", env={"PATH": f"{binaries}:{os.environ['PATH']}"}) as screen:
        await shows(screen, "worker running", 0, 30)
        broken.touch()
        mark = len(screen.output)
        os.kill(embedded.pid(), signal.SIGKILL)
        await shows(screen, "redis ✗", mark, 10)
        await shows(screen, "worker unknown", mark, 5)
        screen.press(b"q")
        pressed = time.monotonic()
        assert await screen.wait(60) == 0, screen.text_since(mark)[-2000:]
        quit_in = time.monotonic() - pressed
    assert quit_in < 5, f"q took {quit_in:.1f}s with Redis gone"
    assert embedded.leases() == [] and embedded.servers_running() == []
    print(f"q with Redis gone: {quit_in:.1f}s")


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "hang-up"])
async def test_the_dashboard_stopped_by_a_signal_cleans_up(make_config, short_dir: Path, fleet, prefix, how: str):
    """SIGTERM (kill, systemd), SIGHUP, and the terminal itself closed (an ssh session
    dropped, `tmux kill-session`): the dashboard quits as `q` does -- exit 0, the terminal
    restored, its embedded Redis stopped and its lease removed."""
    data = embedded_config(make_config, prefix)
    embedded = Embedded(Path(data["data_dir"]))
    with dashboard(short_dir / "config.yaml") as screen:
        await shows(screen, "worker running", 0, 30)
        server = embedded.pid()
        assert embedded.leases() == [str(screen.process.pid)]
        mark = len(screen.output)
        if how == "hang-up":
            screen.hang_up()
        else:
            screen.process.send_signal(getattr(signal, how))
        code = await screen.wait(40)  # the grace for jobs in flight, on a loaded machine
        output = bytes(screen.output[mark:])
    assert code == 0, output[-2000:]
    if how != "hang-up":  # a closed terminal has nobody left to read them
        assert ALT_SCREEN_OFF in output and MOUSE_OFF in output, output[-500:]
    await wait_until(lambda: not alive(server), 5)
    assert embedded.servers_running() == [] and embedded.leases() == []


async def test_pause_and_collect_say_when_their_effect_would_end_with_the_command(
    make_config, short_dir: Path, fleet, prefix
):
    """On the embedded Redis with no other fleettop process, the Redis (and a pause flag or a
    queued job in it) stops with the command: pause and collect refuse, resume says nothing
    is paused. Beside a `--headless` worker they work as usual."""
    data = embedded_config(make_config, prefix)
    config = short_dir / "config.yaml"
    embedded = Embedded(Path(data["data_dir"]))

    code, out, err = await run_fleettop(config, "queue", "pause")
    assert (code, out) == (1, "") and last_line(err).startswith(
        "fleettop: not paused: no other fleettop process is running"
    ), err
    code, out, err = await run_fleettop(config, "collect", SERVER)
    assert (code, out) == (1, "") and last_line(err).startswith(
        "fleettop: not queued: no other fleettop process is running"
    ), err
    code, out, err = await run_fleettop(config, "queue", "resume")
    assert code == 0 and out.startswith("not paused: no other fleettop process is running"), (out, err)
    code, out, _ = await run_fleettop(config, "collect", SERVER, "--wait")  # runs a worker of its own
    assert code == 0 and out.startswith(f"{SERVER}  ok"), out

    worker = await Fleettop.start(config, "--headless")
    try:
        await wait_until(lambda: len(embedded.leases()) == 1, 30)
        await wait_until(lambda: embedded.pid() is not None, 10)
        assert (await run_fleettop(config, "queue", "pause"))[:2] == (0, "paused\n")
        code, out, _ = await run_fleettop(config, "queue", "stats", "--json")
        assert '"paused": true' in out
        assert (await run_fleettop(config, "queue", "resume"))[:2] == (0, "resumed\n")
        code, out, _ = await run_fleettop(config, "collect", SERVER)
        assert (code, out) == (0, "queued 1 of 1 server\n")
    finally:
        assert await worker.stop() == 0, worker.text()[-2000:]
