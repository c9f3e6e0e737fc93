"""The bench's plumbing: the real sshd (the probe tests' fixture, reused), simulated
hosts in their own process, fleettop configs under a private data_dir and Redis
prefix, and timed subprocesses (wall clock, CPU, peak RSS)."""

from __future__ import annotations

import compileall
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
import yaml
from peers import peer_bin  # noqa: F401 -- the peers' venv (ansible, parallel-ssh, py-spy), made on first use

ROOT = Path(__file__).resolve().parents[2]
BENCH = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
FLEETTOP = str(VENV_BIN / "fleettop") if (VENV_BIN / "fleettop").exists() else None
REDIS_URL = os.environ.get("FLEETTOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The bench's sshd stands in for 100 different hosts, each of which would see one
# connection: OpenSSH's defaults (MaxStartups 10:30:100) would drop connections that
# 100 separate sshds never would, so the bench raises them.
SSHD_EXTRA = "MaxStartups 200:30:400\nMaxSessions 20\n"
# For the same reason fleettop's own per-(host, port) connect gate is opened to its global
# limit: 100 hosts would each see one connect at a time, not share the default 8.
SSHD_CONNECTS = 64


def process_cpu(pid: int) -> float:
    """utime + stime of a running process, seconds (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def compile_package(directory: Path) -> None:
    """Byte-compile a tree holding fleettop's `app`, as `pip install` does: a user's fleettop
    never compiles its sources at start (PYTHONDONTWRITEBYTECODE is set on this machine)."""
    compileall.compile_dir(str(directory), quiet=1)


def fleettop_cmd(*args: str) -> list[str]:
    """The `fleettop` console script as a user runs it (python -m app if it is missing)."""
    return [FLEETTOP, *args] if FLEETTOP else [sys.executable, "-m", "fleettop", *args]


# -- the real sshd: tests/probe/conftest.py's fixture, imported --------------------------


def _probe_conftest():
    sys.path.insert(0, str(ROOT / "tests" / "probe"))  # its `from probe_helpers import ...`
    spec = importlib.util.spec_from_file_location("fleettop_probe_conftest", ROOT / "tests" / "probe" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def real_sshd() -> Iterator[object]:
    """The probe tests' `real_sshd` fixture (OpenSSH on a loopback port, user fleettop-test),
    then MaxStartups/MaxSessions raised in its sshd_config and sshd reloaded (SIGHUP)."""
    fixture = _probe_conftest().real_sshd
    generator = getattr(fixture, "__wrapped__", fixture)()
    sshd = next(generator)
    try:
        workdir = sshd.key_file.parent
        config = workdir / "sshd_config"
        config.write_text(config.read_text() + SSHD_EXTRA)
        check = subprocess.run(["/usr/sbin/sshd", "-T", "-f", str(config)], capture_output=True, text=True)
        effective = check.stdout.lower()
        if check.returncode != 0 or "maxstartups 200:30:400" not in effective:
            raise RuntimeError(f"sshd rejects the bench settings: {check.stderr.strip()}")
        pid = int((workdir / "sshd.pid").read_text().split()[0])
        os.kill(pid, signal.SIGHUP)  # sshd re-executes itself and reads the config again
        deadline = time.monotonic() + 10
        while "Received SIGHUP" not in sshd.log.read_text() or not _listening(sshd.port):
            if time.monotonic() > deadline:
                raise RuntimeError("sshd did not come back after SIGHUP: " + sshd.log.read_text()[-500:])
            time.sleep(0.05)
        time.sleep(0.2)
        yield sshd
    finally:
        with contextlib.suppress(StopIteration):
            next(generator)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


# -- simulated hosts in their own process ---------------------------------------------


@dataclass
class SimHosts:
    process: subprocess.Popen
    info: dict
    out: Path | None = None

    def stats(self, timeout: float = 60) -> dict:
        """What the hosts saw (sim_host.py's OUT.stats.json, asked for by SIGUSR1): per host
        its open connections' client ports, connections and sessions ever, answers; and the
        answers per client port."""
        assert self.out is not None
        path = self.out.with_suffix(".stats.json")
        path.unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("sim hosts wrote no stats")
            time.sleep(0.05)
        return json.loads(path.read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@contextlib.contextmanager
def sim_hosts(count: int, scratch: Path, *, seed: int = 11, tag: str = "") -> Iterator[SimHosts]:
    """`count` simulated hosts in a process of their own (sim_host.py); `tag` names its files
    when several run side by side (give each its own `seed` too)."""
    name = f"sim-{count}{tag}"
    out = scratch / f"{name}.json"
    log = scratch / f"{name}.log"
    process = subprocess.Popen(
        [sys.executable, str(BENCH / "sim_host.py"), str(count), str(out), "--seed", str(seed)],
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    hosts = SimHosts(process, {}, out)
    try:
        deadline = time.monotonic() + 60 + count / 50  # 5,000 hosts: key generation and listeners
        while not out.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sim hosts did not start: {log.read_text()[-800:]}")
            time.sleep(0.05)
        hosts.info = json.loads(out.read_text())
        yield hosts
    finally:
        hosts.stop()


# -- fleettop configs ----------------------------------------------------------------


@dataclass
class Fleet:
    """One fleettop installation: a data_dir of its own, a Redis prefix of its own."""

    name: str
    root: Path
    servers: list[dict]
    ssh: dict
    concurrency: int
    embedded_redis: bool = False
    prefix: str = field(default_factory=lambda: f"ftbench-{uuid.uuid4().hex[:10]}:")
    database_url: str | None = None  # None: SQLite in data_dir
    # Scheduled collections stay out of the way of manual rounds unless a bench wants them.
    interval: int = 86400

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def data_dir(self) -> Path:
        return self.root / "d"

    def write(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {
            "data_dir": str(self.data_dir),
            "redis": {"url": None if self.embedded_redis else REDIS_URL, "prefix": self.prefix},
            "worker": {"concurrency": self.concurrency, "shutdown_grace": 5},
            "ssh": {"connect_timeout": 10, "command_timeout": 20, **self.ssh},
            "defaults": {"interval": self.interval},
            "servers": self.servers,
        }
        if self.database_url:
            data["database"] = {"url": self.database_url}
        self.config.write_text(yaml.safe_dump(data))
        return self.config

    def cleanup(self) -> None:
        if not self.embedded_redis:
            client = redis.Redis.from_url(REDIS_URL)
            try:
                keys = list(client.scan_iter(match=f"*{self.prefix}*", count=1000))
                for start in range(0, len(keys), 1000):
                    client.delete(*keys[start : start + 1000])
            finally:
                client.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def workers_alive(self) -> int:
        if self.embedded_redis:
            sock = self.data_dir / "redis" / "redis.sock"
            if not sock.exists():
                return 0
            client = redis.Redis(unix_socket_path=str(sock))
        else:
            client = redis.Redis.from_url(REDIS_URL)
        try:
            return client.zcount(self.prefix + "workers", f"({time.time()}", "+inf")
        except redis.RedisError:
            return 0
        finally:
            client.close()


def sshd_servers(sshd, count: int) -> tuple[list[dict], dict]:
    servers = [
        {
            "name": f"real-{index:03d}",
            "host": "127.0.0.1",
            "port": sshd.port,
            "username": sshd.user,
            "auth": "key",
            "key_file": str(sshd.key_file),
        }
        for index in range(1, count + 1)
    ]
    return servers, {"known_hosts": str(sshd.known_hosts), "max_concurrent_connects": SSHD_CONNECTS}


def sim_servers(info: dict, prefix: str = "") -> tuple[list[dict], dict]:
    """Server entries for a sim_host.py process's hosts; `prefix` before each name keeps the
    names of several such processes apart (each names its hosts sim-0001...)."""
    servers = [
        {
            "name": prefix + name,
            "host": info["address"],
            "port": port,
            "username": info["username"],
            "auth": "key",
            "key_file": info["client_key"],
        }
        for name, port in info["hosts"]
    ]
    return servers, {"known_hosts": info["known_hosts"]}


# -- timed processes -------------------------------------------------------------------


@dataclass
class Timed:
    wall: float
    cpu: float  # user + system seconds of the process (and its children)
    maxrss_kib: int
    returncode: int
    output: str


def run_timed(cmd: list[str], *, timeout: float, env: dict | None = None, cwd: Path | None = None) -> Timed:
    """Run to the end; wall clock from fork to reaped exit, CPU and peak RSS from wait4()."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return Timed(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, process.returncode, text)


class Headless:
    """A `fleettop --headless` worker, its CPU and RSS read from /proc."""

    def __init__(self, fleet: Fleet, log_name: str = "headless.log"):
        self.fleet = fleet
        self.log = fleet.root / log_name
        self.process = subprocess.Popen(
            fleettop_cmd("--config", str(fleet.config), "--headless"),
            stdin=subprocess.DEVNULL,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=fleet.root,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.fleet.workers_alive():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"headless worker did not start: {self.log.read_text()[-800:]}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return process_cpu(self.pid)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


# -- figures ---------------------------------------------------------------------------


@dataclass
class Figure:
    label: str
    values: list[float]
    unit: str
    how: str
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def best(self) -> float:
        return min(self.values) if self.values else float("nan")


def fmt(value: float, unit: str) -> str:
    if value != value:  # nan
        return "-"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "KiB":
        return f"{value:.1f} KiB"
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "x":
        return f"{value:.1f}x"
    return f"{value:.3g} {unit}"
