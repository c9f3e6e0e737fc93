"""`fleettop` commands as processes of their own that skip Python's start-up.

`python -m fleettop` spends about half a second of CPU importing (SQLAlchemy, pydantic,
asyncssh, Textual) before it does anything, and the suite runs a few hundred commands and
workers, most of them on two cores. Here a *warm parent* imports fleettop once per test
process and forks a child per command. The child is a real process: its own pid, stdio
(files, pipes or a terminal), environment, working directory, resource limits, signals and
exit code; it runs `fleettop.__main__.main()` as `python -m fleettop` does. Only the imports
are skipped.

So a test about start-up itself (what a command imports, what it prints while importing, its
argv in `ps`) must start `python -m fleettop` (`real=True`, or a subprocess of its own).

Python reads a few variables once, at start-up (PYTHON*, the locale, and fleettop's time
scale): a warm parent is started per distinct set of them, so a child's start-up
environment is exactly the one a real process would have had.

Protocol (a Unix SOCK_SEQPACKET socket per warm parent): the test sends one packet, the
request as JSON with the child's stdin, stdout and stderr as SCM_RIGHTS; the warm parent
forks a supervisor that forks the command, answers {"pid": N}, waits for it and answers
{"returncode": N} (negative: killed by that signal, as subprocess reports it).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Any

# What the interpreter, fleettop (timing.SCALE_ENV) or Textual (its constants, the terminal's
# colours) may read once, at import.
_STARTUP_PREFIXES = ("PYTHON", "LC_", "TEXTUAL")
_STARTUP_NAMES = {"LANG", "LANGUAGE", "TERM", "COLORTERM", "NO_COLOR", "FORCE_COLOR", "FLEETTOP_TEST_TIME_SCALE"}
# Imported before forking: what the commands and workers of the suite load, and Alembic (with
# Mako and Pygments), which the first command on a new SQLite database imports to migrate it
# (~0.1 s of CPU each time; fleettop itself leaves it out when the schema is current).
_PRELOAD = (
    "fleettop.__main__",
    "fleettop.cli",
    "fleettop.cli.repository",
    "fleettop.wiring",
    "fleettop.service",
    "fleettop.queue.runtime",
    "fleettop.probe.ssh",
    "fleettop.api",
    "fleettop.tui.app",
    "alembic.command",
)


def _startup_key(env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted(
            (name, value) for name, value in env.items() if name in _STARTUP_NAMES or name.startswith(_STARTUP_PREFIXES)
        )
    )


def limits(*, open_files: tuple[int, int] | None = None, memory: int | None = None) -> list[tuple[int, int, int]]:
    """Resource limits for a child, as `ulimit -n` and `ulimit -v` (in bytes) would set them."""
    chosen = []
    if open_files is not None:
        chosen.append((resource.RLIMIT_NOFILE, *open_files))
    if memory is not None:
        chosen.append((resource.RLIMIT_AS, memory, memory))
    return chosen


class _WarmParent:
    def __init__(self, env: dict[str, str]):
        self._directory = tempfile.mkdtemp(prefix="fleettop-warm-")
        self.address = os.path.join(self._directory, "s")
        log = Path(self._directory, "log")  # what its imports print is not any command's
        with log.open("wb") as stderr:
            self._process = subprocess.Popen(
                [sys.executable, __file__, self.address],
                stdin=subprocess.PIPE,  # its end of file is the warm parent's cue to go
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                cwd=self._directory,
            )
        ready = self._process.stdout.readline() if self._process.stdout else b""
        if ready != b"ready\n":
            raise RuntimeError(f"the warm fleettop parent did not start: {log.read_text()[-2000:]}")

    def close(self) -> None:
        if self._process.stdin:
            self._process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(10)
        shutil.rmtree(self._directory, ignore_errors=True)


_parents: dict[tuple[tuple[str, str], ...], _WarmParent] = {}
_parents_lock = threading.Lock()


@atexit.register
def _close_parents() -> None:
    for parent in _parents.values():
        parent.close()


def _fork(
    argv: list[str],
    env: dict[str, str],
    cwd: Path | str,
    stdio: tuple[int, int, int],
    *,
    limits=(),
    session: bool = False,
) -> socket.socket:
    """Ask a warm parent for the command; returns the socket that says its pid, then its exit."""
    key = _startup_key(env)
    with _parents_lock:
        if key not in _parents:
            _parents[key] = _WarmParent(env)
        parent = _parents[key]
    request = {"argv": argv, "env": env, "cwd": str(cwd), "limits": list(limits), "session": session}
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    connection.connect(parent.address)
    socket.send_fds(connection, [json.dumps(request).encode()], list(stdio))
    return connection


def _answer(connection: socket.socket, name: str) -> int:
    packet = connection.recv(4096)
    if not packet:
        raise RuntimeError("the warm fleettop parent went away")
    return json.loads(packet)[name]


class _Forked:
    pid: int
    returncode: int | None = None

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Popen(_Forked):
    """A forked command, as much of subprocess.Popen as the tests use."""

    def __init__(self, argv: list[str], *, stdin: int, stdout: int, stderr: int, env, cwd, session=False, limits=()):
        self._connection = _fork(argv, env, cwd, (stdin, stdout, stderr), limits=limits, session=session)
        self.pid = _answer(self._connection, "pid")

    def poll(self) -> int | None:
        if self.returncode is None:
            self._connection.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                self.returncode = _answer(self._connection, "returncode")
            self._connection.setblocking(True)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self._connection.settimeout(timeout)
            try:
                self.returncode = _answer(self._connection, "returncode")
            except TimeoutError:
                raise subprocess.TimeoutExpired("fleettop", timeout or 0) from None
            finally:
                self._connection.settimeout(None)
        return self.returncode


class Process(_Forked):
    """A forked command, as much of asyncio.subprocess.Process as the tests use: its
    returncode is set as it exits, whether or not anyone waits."""

    def __init__(self, connection: socket.socket, pid: int):
        self._connection = connection
        self.pid = pid
        self._exited = asyncio.get_running_loop().create_future()
        connection.setblocking(False)
        asyncio.get_running_loop().add_reader(connection.fileno(), self._on_exit)

    def _on_exit(self) -> None:
        asyncio.get_running_loop().remove_reader(self._connection.fileno())
        self._connection.setblocking(True)
        try:
            self.returncode = _answer(self._connection, "returncode")
        except RuntimeError as gone:  # wait() says so rather than waiting forever
            self._exited.set_exception(gone)
        else:
            self._exited.set_result(self.returncode)
        finally:
            self._connection.close()

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


async def start(argv: list[str], *, stdin: int, stdout: int, stderr: int, env, cwd, limits=()) -> Process:
    connection = await asyncio.to_thread(_fork, argv, env, cwd, (stdin, stdout, stderr), limits=limits)
    return Process(connection, await asyncio.to_thread(_answer, connection, "pid"))


@contextlib.contextmanager
def _captured(input: str | None):
    """stdin with `input`, stdout and stderr: files, read back by `output`."""
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        stdin.write((input or "").encode())
        stdin.seek(0)
        yield stdin.fileno(), stdout.fileno(), stderr.fileno()


def _output(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    with open(fd, "rb", closefd=False) as stream:
        return stream.read().decode(errors="replace")


def run(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | str,
    timeout: float = 60,
    input: str | None = None,
    open_files: tuple[int, int] | None = None,
    memory: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Like subprocess.run(capture_output=True, text=True) of `python -m fleettop ARGV`."""
    with _captured(input) as (stdin, stdout, stderr):
        process = Popen(
            argv,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=dict(os.environ if env is None else env),
            cwd=cwd,
            limits=limits(open_files=open_files, memory=memory),
        )
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        return subprocess.CompletedProcess(["fleettop", *argv], code, _output(stdout), _output(stderr))


async def run_async(
    argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`run` from a test's event loop, which goes on meanwhile."""
    with _captured(None) as (stdin, stdout, stderr):
        process = await start(
            argv, stdin=stdin, stdout=stdout, stderr=stderr, env=dict(os.environ if env is None else env), cwd=cwd
        )
        try:
            code = await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        return subprocess.CompletedProcess(["fleettop", *argv], code, _output(stdout), _output(stderr))


# The warm parent's side: a script of its own, run by _WarmParent.


def _serve(address: str) -> None:
    sys.path[0] = os.getcwd()  # as `python -m` has it: the working directory, not tests/
    import importlib

    for module in _PRELOAD:
        importlib.import_module(module)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(address)
    listener.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the supervisors
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    events = selectors.DefaultSelector()
    events.register(listener, selectors.EVENT_READ)
    events.register(sys.stdin, selectors.EVENT_READ)
    while True:
        for key, _ in events.select():
            if key.fileobj is sys.stdin:  # the test process is done with it
                # Nothing here to save or flush: skip tearing down what it imported, 0.5 s of
                # CPU that held up the end of every test process.
                os._exit(0)
            connection, _ = listener.accept()
            if os.fork() == 0:
                events.close()
                listener.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _supervise(connection)  # returns only in the command's process
                from fleettop.__main__ import main

                sys.exit(main())
            connection.close()


def _supervise(connection: socket.socket) -> None:
    """Fork the command; in this process (the supervisor) report its pid and exit, then end."""
    try:
        message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            connection.close()
            _become(request, fds)
            return
        for fd in fds:
            os.close(fd)
        connection.send(json.dumps({"pid": pid}).encode())
        _, status = os.waitpid(pid, 0)
        connection.send(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode())
    except BaseException:
        import traceback

        traceback.print_exc()
    os._exit(0)


def _become(request: dict[str, Any], fds: list[int]) -> None:
    """Turn this fork into `python -m fleettop ARGV` as the request describes it."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # as subprocess's close_fds: only the three standard streams
    if request["session"]:  # a session of its own, the terminal on stdin its controlling one
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    for limit, soft, hard in request["limits"]:
        resource.setrlimit(limit, (soft, hard))
    os.chdir(request["cwd"])
    sys.path[0] = request["cwd"]
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [sys.modules["fleettop.__main__"].__file__, *request["argv"]]
    sys.stdout.reconfigure(line_buffering=os.isatty(1))
    time.tzset()


if __name__ == "__main__":
    _serve(sys.argv[1])
