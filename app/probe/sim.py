"""Simulated Linux hosts: asyncssh servers on loopback answering the probe.

`SimFleet(count)` starts one SSH listener per simulated host (each with its own
ed25519 host key and its own port), all in this process and event loop: the
tests, `fleettop --demo N` and the benchmarks use it. A host answers any exec
with text in exactly the format app/probe/script.sh prints, rendered by
`render_probe_output` from a simulated machine whose figures move with time:
some hosts are busy, some disks fill up, now and then a host reboots.

Measured here: 1,000 hosts start in well under a second (key generation
~40 µs a host, a listener ~0.2 ms), so keys are made eagerly on the loop.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import random
import resource
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from fleettop.config import ServerConfig
from fleettop.probe.parse import BEGIN_MARKER, END_MARKER
from fleettop.probe.script import PROBE_SCRIPT
from fleettop.probe.ssh import host_pattern
from fleettop.rollup import Bucket, Stat, coarsen

USER_HZ = 100  # jiffies per second, as /proc/stat counts on every Linux
KIB = 1024
GIB_KIB = 1024 * 1024


# ---------------------------------------------------------------------------
# What a probe sees: one rendering of /proc and df.


@dataclass
class ProcCounters:
    """The counters the probe samples (twice on first contact)."""

    uptime_s: float
    cpu: tuple[int, ...]  # user nice system idle iowait irq softirq steal (jiffies)
    interfaces: dict[str, tuple[int, int]]  # name -> (rx bytes, tx bytes), loopback included


@dataclass
class SimMount:
    device: str
    mount: str
    fstype: str
    total_kib: int = 0  # 0: not shown by df (proc, sysfs, ...)
    used_kib: int = 0
    avail_kib: int = 0


@dataclass
class ProcSnapshot:
    """Everything one probe run prints, as numbers."""

    counters: ProcCounters
    load: tuple[float, float, float]
    procs: int
    mem_total_kib: int
    mem_available_kib: int
    swap_total_kib: int
    swap_free_kib: int
    mounts: list[SimMount]


def render_probe_output(snapshot: ProcSnapshot, first: ProcCounters | None = None, noise: str = "") -> str:
    """The probe script's output for this snapshot; `first`: the earlier in-script sample.

    It uses the parser's own markers, and the tests parse what it renders and compare
    with the snapshot: the script's format, the parser and the simulator cannot drift apart.
    """
    lines = [noise.rstrip("\n")] if noise else []
    lines.append(BEGIN_MARKER)
    if first is not None:
        lines += _render_counters(first, "first-")
    lines += _render_counters(snapshot.counters, "")
    load1, load5, load15 = snapshot.load
    lines += ["@loadavg", f"{load1:.2f} {load5:.2f} {load15:.2f} 2/{snapshot.procs + 40} {snapshot.procs * 37}"]
    lines += ["@procs", str(snapshot.procs)]
    mem_free = snapshot.mem_available_kib * 3 // 5
    lines += [
        "@meminfo",
        f"MemTotal:       {snapshot.mem_total_kib:>8} kB",
        f"MemFree:        {mem_free:>8} kB",
        f"MemAvailable:   {snapshot.mem_available_kib:>8} kB",
        f"Buffers:        {snapshot.mem_available_kib // 20:>8} kB",
        f"Cached:         {snapshot.mem_available_kib // 4:>8} kB",
        f"SwapTotal:      {snapshot.swap_total_kib:>8} kB",
        f"SwapFree:       {snapshot.swap_free_kib:>8} kB",
        "@mounts",
    ]
    lines += [f"{m.device} {m.mount.replace(' ', chr(92) + '040')} {m.fstype} rw,relatime 0 0" for m in snapshot.mounts]
    lines += ["@df", "Filesystem     1024-blocks      Used Available Capacity Mounted on"]
    for m in snapshot.mounts:
        if m.total_kib:
            capacity = -(-100 * m.used_kib // max(m.used_kib + m.avail_kib, 1))  # df rounds up
            lines.append(f"{m.device:<14} {m.total_kib:>11} {m.used_kib:>9} {m.avail_kib:>9} {capacity:>7}% {m.mount}")
    lines.append(END_MARKER)
    return "\n".join(lines) + "\n"


def _render_counters(counters: ProcCounters, prefix: str) -> list[str]:
    lines = [f"@{prefix}uptime", f"{counters.uptime_s:.2f} {counters.uptime_s * 1.7:.2f}"]
    lines += [f"@{prefix}stat", "cpu  " + " ".join(str(v) for v in counters.cpu) + " 0 0"]
    lines += [
        f"@{prefix}netdev",
        "Inter-|   Receive                                                |  Transmit",
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed",
    ]
    for name, (rx, tx) in counters.interfaces.items():
        lines.append(
            f"{name:>6}: {rx:>8} {rx // 900:>7}    0    0    0     0          0         0 {tx:>8} {tx // 900:>7}    0    0    0     0       0          0"
        )
    return lines


# ---------------------------------------------------------------------------
# A simulated machine whose figures move with time.


def _spread(average: float, spread: float, samples: int, top: float = math.inf) -> Stat:
    """A bucket of `samples` values about `average`, from (1 - spread) to (1 + spread) times it."""
    return Stat(samples, average * samples, average * (1 - spread), min(top, average * (1 + spread)))


class SimMachine:
    """One host's simulated state, advanced on each probe by the wall time elapsed."""

    def __init__(self, rng: random.Random, reboots: bool):
        self.rng = rng
        self.cores = rng.choice([1, 2, 2, 4, 4, 8, 16, 32])
        self.busy = rng.random() < 0.15
        self.cpu_target = rng.uniform(0.82, 0.99) if self.busy else rng.uniform(0.02, 0.45)
        self.cpu_util = self.cpu_target
        self.mem_total_kib = rng.choice([1, 2, 4, 8, 16, 32, 64]) * GIB_KIB
        self.mem_fraction = rng.uniform(0.9, 0.97) if rng.random() < 0.1 else rng.uniform(0.15, 0.8)
        self.swap_total_kib = 0 if rng.random() < 0.3 else rng.choice([1, 2, 4]) * GIB_KIB
        self.net_rate = rng.choice([5e3, 5e4, 5e5, 5e6, 5e7])
        # Disks: a root, sometimes a data volume; some nearly full and still filling.
        near_full = rng.random() < 0.15
        self.disks = [SimMount("/dev/vda1", "/", "ext4", rng.choice([20, 40, 80, 160]) * GIB_KIB)]
        if rng.random() < 0.5:
            self.disks.append(SimMount("/dev/vdb", "/srv/data", "xfs", rng.choice([100, 500, 2000]) * GIB_KIB))
        for disk in self.disks:
            fraction = rng.uniform(0.86, 0.96) if near_full else rng.uniform(0.1, 0.7)
            disk.used_kib = int(disk.total_kib * fraction)
        self.disk_growth = rng.uniform(0.0, 2e-5) if near_full else 0.0  # fraction of the disk per second
        self.reboot_every = rng.uniform(300, 900) if reboots else None  # seconds of uptime
        self._boot(uptime=rng.uniform(600, 400 * 86400))
        self._last = time.monotonic()

    def _boot(self, uptime: float = 0.0) -> None:
        self.uptime = uptime
        total = uptime * USER_HZ * self.cores
        busy = total * self.cpu_target
        self.cpu = [busy * 0.7, busy * 0.02, busy * 0.25, total - busy, 0.0, 0.0, busy * 0.03, 0.0]
        self.rx = uptime * self.net_rate
        self.tx = uptime * self.net_rate * 0.3
        self.load = [self.cores * self.cpu_util] * 3

    def reboot(self) -> None:
        self._boot()

    def advance(self) -> None:
        now = time.monotonic()
        elapsed, self._last = max(now - self._last, 0.0), now
        if self.reboot_every is not None and self.uptime + elapsed > self.reboot_every:
            self._boot()
            return
        rng = self.rng
        self.cpu_util = min(1.0, max(0.0, self.cpu_util + 0.3 * (self.cpu_target - self.cpu_util) + rng.gauss(0, 0.04)))
        self.uptime += elapsed
        jiffies = elapsed * USER_HZ * self.cores
        busy = jiffies * self.cpu_util
        for index, share in ((0, 0.7), (1, 0.02), (2, 0.25), (6, 0.03)):
            self.cpu[index] += busy * share
        self.cpu[3] += (jiffies - busy) * 0.97
        self.cpu[4] += (jiffies - busy) * 0.03
        rate = self.net_rate * rng.uniform(0.5, 1.5)
        self.rx += elapsed * rate
        self.tx += elapsed * rate * 0.3
        # Load averages: exponential moving averages towards the running tasks, as the kernel does.
        running = self.cores * self.cpu_util * rng.uniform(0.8, 1.3)
        for index, period in enumerate((60, 300, 900)):
            decay = math.exp(-elapsed / period)
            self.load[index] = self.load[index] * decay + running * (1 - decay)
        self.mem_fraction = min(0.99, max(0.05, self.mem_fraction + rng.gauss(0, 0.005)))
        for disk in self.disks:
            disk.used_kib = min(disk.total_kib, disk.used_kib + int(disk.total_kib * self.disk_growth * elapsed))

    def past(self, now: int, *, days: int, fine_days: int, seed: int) -> tuple[list[Bucket], list[Bucket]]:
        """The history this machine would have: its last `days` as 1-hour buckets, the last
        `fine_days` of them as 5-minute ones too (the hours there merged from those, as the
        workers do), up to the hour under way, near its figures now: a daily cycle on the CPU, load and
        network, a slow drift on memory, and disks that were emptier before (a filling one a
        few points a day, after a cleanup some weeks ago). For the demo: charts and forecasts
        at once. Figures change by the hour of the day and by the day, so the buckets share
        their few hundred Stat objects: a year of a hundred servers is made in seconds."""
        rng = random.Random(seed)
        swap = 0.0 if not self.swap_total_kib else rng.uniform(0, 20)
        disks = {disk.mount: disk.used_kib / (disk.total_kib * 0.95) * 100 for disk in self.disks}
        # Percentage points a day: a filling disk gains a few, the others stay.
        growth = {mount: rng.uniform(0.5, 3.0) if self.disk_growth else 0.0 for mount in disks}
        cleanup_day = rng.randint(14, 60)  # days ago each disk lost a third of its use
        ram_drift = [rng.gauss(0, 3) for _ in range(days + 2)]
        today = now - now % 86_400

        def by_hour(samples: int) -> list[dict[str, Stat]]:
            hours = []
            for hour in range(24):
                cycle = 1 + 0.35 * math.sin(2 * math.pi * hour / 24 - 2.0)
                cpu = min(100.0, max(0.5, self.cpu_target * 100 * cycle))
                rate = self.net_rate * (1 + 0.5 * math.sin(2 * math.pi * hour / 24 - 2.5))
                hours.append(
                    {
                        "cpu": _spread(cpu, 0.5, samples, top=100.0),
                        "load1": _spread(self.cores * cpu / 100, 0.6, samples),
                        "net_rx": _spread(rate, 0.8, samples),
                        "net_tx": _spread(rate * 0.3, 0.8, samples),
                        "swap": _spread(swap, 0.0, samples),
                    }
                )
            return hours

        def by_day(day: int, samples: int) -> tuple[dict[str, Stat], dict[str, Stat]]:
            """Day 0 is today, 1 yesterday..."""
            mounts = {}
            for mount, level in disks.items():
                before = level - growth[mount] * day - (level / 3 if day > cleanup_day else 0)
                mounts[mount] = _spread(min(100.0, max(1.0, before)), 0.002, samples)
            ram = min(99.0, max(1.0, self.mem_fraction * 100 + ram_drift[day]))
            fullest = max(stat.max for stat in mounts.values())
            return {"ram": _spread(ram, 0.03, samples, top=100.0), "disk": _spread(fullest, 0.0, samples)}, mounts

        def buckets(start: int, stop: int, width: int, samples: int) -> list[Bucket]:
            hours, days_seen = by_hour(samples), {}
            made = []
            for at in range(start, stop, width):
                day = (today - (at - at % 86_400)) // 86_400
                if day not in days_seen:
                    days_seen[day] = by_day(day, samples)
                daily, mounts = days_seen[day]
                made.append(Bucket(at, {**hours[(at % 86_400) // 3600], **daily}, mounts))
            return made

        last_hour = now - now % 3600
        fine_from = last_hour - fine_days * 86_400
        fine = buckets(fine_from, last_hour, 300, 30)  # the hour under way is the live collections'.
        hours = buckets(last_hour - days * 86_400, fine_from, 3600, 360)
        return hours + coarsen(fine, 3600), fine

    def counters(self) -> ProcCounters:
        return ProcCounters(
            uptime_s=self.uptime,
            cpu=tuple(int(v) for v in self.cpu),
            interfaces={"lo": (int(self.uptime * 900), int(self.uptime * 900)), "eth0": (int(self.rx), int(self.tx))},
        )

    def snapshot(self) -> ProcSnapshot:
        mounts = [
            SimMount("proc", "/proc", "proc"),
            SimMount("sysfs", "/sys", "sysfs"),
            SimMount("udev", "/dev", "devtmpfs", self.mem_total_kib // 2, 0, self.mem_total_kib // 2),
            SimMount("tmpfs", "/run", "tmpfs", self.mem_total_kib // 10, 1200, self.mem_total_kib // 10 - 1200),
        ]
        for disk in self.disks:
            # ext4 and xfs keep ~5 % in reserve: total > used + available, as df shows it.
            mounts.append(
                SimMount(
                    disk.device,
                    disk.mount,
                    disk.fstype,
                    disk.total_kib,
                    disk.used_kib,
                    max(int(disk.total_kib * 0.95) - disk.used_kib, 0),
                )
            )
        root = next(mount for mount in mounts if mount.mount == "/")
        # A bind mount of the root device, as containers and chroots have: counted once.
        mounts.append(
            SimMount(root.device, "/var/lib/sim/bind", root.fstype, root.total_kib, root.used_kib, root.avail_kib)
        )
        return ProcSnapshot(
            counters=self.counters(),
            load=(self.load[0], self.load[1], self.load[2]),
            procs=int(60 + 25 * self.cores * (0.5 + self.cpu_util)),
            mem_total_kib=self.mem_total_kib,
            mem_available_kib=int(self.mem_total_kib * (1 - self.mem_fraction)),
            swap_total_kib=self.swap_total_kib,
            swap_free_kib=int(self.swap_total_kib * (1 - self.mem_fraction / 4)),
            mounts=mounts,
        )


# ---------------------------------------------------------------------------
# The SSH side.

FIRST_CONTACT_SLEEP = 0.25  # the script's pause between its two samples
HOSTILE = ("huge", "endless", "garbage", "escapes", "stderr-escapes", "drip", "many-disks")


@dataclass
class SimHost:
    name: str
    machine: SimMachine
    host_key: asyncssh.SSHKey
    port: int = 0
    listener: asyncssh.SSHAcceptor | None = None
    connections: set = field(default_factory=set)
    frozen: bool = False
    delay: float = 0.0  # seconds a probe takes before it answers (a slow host)
    hostile: str | None = None  # one of HOSTILE: how this host misbehaves (see SimFleet.misbehave)
    connections_made: int = 0  # accepted connections, ever: reuse shows as 1
    sessions: int = 0  # probe sessions opened, ever: a kept session shows as 1
    answers: int = 0  # probe requests received (answered, unless frozen or hostile)
    channels_closed_frozen: int = 0  # frozen commands whose channel the client closed
    jump_host: bool = False  # forwards connections to other hosts (direct-tcpip), as a bastion
    forwards: int = 0  # connections forwarded, ever


class _SimServer(asyncssh.SSHServer):
    def __init__(self, fleet: SimFleet, host: SimHost):
        self._fleet = fleet
        self._host = host
        self._connection: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._connection = conn
        self._authenticated = False
        self._host.connections.add(conn)
        self._host.connections_made += 1
        self._fleet.handshaking += 1
        self._fleet.peak_handshaking = max(self._fleet.peak_handshaking, self._fleet.handshaking)

    def auth_completed(self) -> None:
        self._authenticated = True
        self._fleet.handshaking -= 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._host.connections.discard(self._connection)
        if not self._authenticated:
            self._fleet.handshaking -= 1

    def begin_auth(self, username: str) -> bool:
        return True

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
        """A jump host forwards to any of the fleet's hosts (asyncssh opens the TCP connection);
        any other host refuses, as an sshd with AllowTcpForwarding no."""
        if not self._host.jump_host or dest_host != self._fleet.address:
            return False
        self._host.forwards += 1
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == self._fleet.username and hmac.compare_digest(password, self._fleet.password)

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == self._fleet.username and key == self._fleet.client_public_key


class SimFleet:
    """N simulated hosts on loopback. `async with SimFleet(100) as fleet: fleet.hosts ...`"""

    def __init__(self, count: int, seed: int = 0, *, address: str = "127.0.0.1", reboots: bool = True):
        self.count = count
        self.seed = seed
        self.address = address
        self.username = "fleettop"
        self.password = secrets.token_urlsafe(16)
        client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = client_key
        self.client_public_key = client_key.convert_to_public()
        self._hosts: dict[str, SimHost] = {}
        for index in range(count):
            rng = random.Random(seed * 1_000_003 + index)
            # One host in 50 reboots every few minutes; the rest run for months.
            machine = SimMachine(rng, reboots=reboots and index % 50 == 7)
            name = f"sim-{index + 1:04d}"
            self._hosts[name] = SimHost(name, machine, asyncssh.generate_private_key("ssh-ed25519"))
        self._dir: Path | None = None
        # Connections accepted but not yet authenticated, now and at most: shows a client's connect cap.
        self.handshaking = 0
        self.peak_handshaking = 0

    @property
    def hosts(self) -> list[tuple[str, int]]:
        return [(host.name, host.port) for host in self._hosts.values()]

    def host(self, name: str) -> SimHost:
        return self._hosts[name]

    @property
    def known_hosts_path(self) -> Path:
        return self._path("known_hosts")

    @property
    def client_key_path(self) -> Path:
        return self._path("client_key")

    def server_configs(self, auth: str = "key") -> list[ServerConfig]:
        """The hosts as servers to monitor (host keys trusted by `known_hosts_path`)."""
        key_file = self.client_key_path if auth == "key" else None
        return [
            ServerConfig(name=name, host=self.address, port=port, username=self.username, auth=auth, key_file=key_file)
            for name, port in self.hosts
        ]

    async def __aenter__(self) -> SimFleet:
        _raise_open_files_limit(4 * self.count + 256)  # a listener, a server and a client socket per host
        self._dir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="fleettop-sim-"))
        try:
            await asyncio.gather(*(self.start(name) for name in self._hosts))
            await asyncio.to_thread(self._write_files)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.gather(*(self.stop(name) for name in self._hosts))
        if self._dir is not None:
            await asyncio.to_thread(shutil.rmtree, self._dir, True)
            self._dir = None

    async def start(self, name: str) -> None:
        """Start (or restart, on the same port) one host's SSH server."""
        host = self._hosts[name]
        if host.listener is not None:
            return
        host.listener = await asyncssh.listen(
            self.address,
            host.port,
            server_host_keys=[host.host_key],
            server_factory=lambda: _SimServer(self, host),
            process_factory=lambda process: self._serve(host, process),
            encoding=None,  # bytes: a hostile host may send what is not UTF-8
            reuse_address=True,
            config=None,
        )
        host.port = host.listener.get_port()

    async def stop(self, name: str) -> None:
        """Stop one host: its listener closes and its connections drop (a crash, a reboot)."""
        host = self._hosts[name]
        if host.listener is not None:
            host.listener.close()
            await host.listener.wait_closed()
            host.listener = None
        for conn in list(host.connections):
            conn.abort()
        host.connections.clear()

    async def restart(self, name: str) -> None:
        await self.stop(name)
        await self.start(name)

    async def change_key(self, name: str) -> asyncssh.SSHKey:
        """Give a host a new host key (known_hosts_path keeps the old one); returns the new key."""
        host = self._hosts[name]
        host.host_key = asyncssh.generate_private_key("ssh-ed25519")
        await self.restart(name)
        return host.host_key

    def make_jump_host(self, name: str, allowed: bool = True) -> None:
        """Let a host forward connections to the others: a bastion."""
        self._hosts[name].jump_host = allowed

    def freeze(self, name: str, frozen: bool = True) -> None:
        """A frozen host accepts commands but never answers them (a hung df)."""
        self._hosts[name].frozen = frozen

    def reboot(self, name: str) -> None:
        self._hosts[name].machine.reboot()

    def slow(self, name: str, seconds: float) -> None:
        """Answer every probe `seconds` late (0: at once)."""
        self._hosts[name].delay = seconds

    def misbehave(self, name: str, how: str | None) -> None:
        """Make a host hostile (None: behave again). `how`, one of HOSTILE:
        "huge": a valid answer padded to 8 MiB; "endless": output that never ends;
        "garbage": random bytes (not UTF-8); "escapes": a valid answer whose mount,
        device and fstype names carry terminal escapes and Rich markup; "stderr-escapes": exit 1 with
        escapes and markup on stderr; "drip": a byte every half second; "many-disks": a
        valid answer under the size cap listing 1,200 disks, each mounted at a 300-character path."""
        if how is not None and how not in HOSTILE:
            raise ValueError(f"unknown hostile behaviour {how!r}")
        self._hosts[name].hostile = how

    async def _serve(self, host: SimHost, process: asyncssh.SSHServerProcess) -> None:
        """A probe session as script.sh runs it: `[exec] sh -s -- FIRST [serve]` with the script
        on stdin, answered; with serve, then one answer per request line, until EOF."""
        host.sessions += 1
        words = (process.command or "").split()
        args = words[words.index("--") + 1 :] if "--" in words else []
        try:
            await process.stdin.readexactly(len(PROBE_SCRIPT.encode()))
            request = args[0] if args else "0"
            while request in ("0", "1"):
                if not await self._answer(host, process, first_contact=request == "1"):
                    return
                if args[1:] != ["serve"]:
                    break
                request = (await process.stdin.readline()).strip().decode(errors="replace")
            process.exit(0)
        except (asyncssh.Error, OSError, asyncio.IncompleteReadError, asyncssh.BreakReceived, asyncssh.SignalReceived):
            process.close()

    async def _answer(self, host: SimHost, process: asyncssh.SSHServerProcess, *, first_contact: bool) -> bool:
        """One answer; False when the session is over (frozen, or a hostile host ended it)."""
        host.answers += 1
        if host.frozen:
            await process.channel.wait_closed()
            host.channels_closed_frozen += 1
            return False
        if host.delay:
            await asyncio.sleep(host.delay)
        machine = host.machine
        first = None
        if first_contact:
            machine.advance()
            first = machine.counters()
            await asyncio.sleep(FIRST_CONTACT_SLEEP)
        machine.advance()
        text = render_probe_output(machine.snapshot(), first)
        if host.hostile is not None:
            return await self._hostile(host.hostile, process, text)
        process.stdout.write(text.encode())
        return True

    async def _hostile(self, how: str, process: asyncssh.SSHServerProcess, text: str) -> bool:
        """A hostile answer; True if the session goes on (only "escapes", a valid answer)."""
        out = process.stdout
        if how == "huge":
            padding = (b"x" * 1023 + b"\n") * (8 * 1024)
            out.write(padding + text.encode())
            await out.drain()
        elif how == "endless":
            chunk = b"y" * 65536
            while not process.channel.is_closing():
                out.write(chunk)
                await out.drain()
        elif how == "garbage":
            out.write(random.Random(self.seed).randbytes(64 * 1024))
        elif how == "escapes":
            evil = "/mnt/\x1b]0;pwned\x07\x1b[2J[bold red]boom[/]\x1b[31m"
            row = f"/dev/vdz\x1b[5m 1048576 524288 524288 50% {evil}\n"  # a disk of its own, listed by df
            # ...and in /proc/mounts, with a title change, an OSC 52 clipboard write and a colour as its fstype
            fstype = "\x1b]0;PWNED\x07\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[31mRED"
            mount = f"/dev/vdz {evil.replace(' ', chr(92) + '040')} {fstype} rw 0 0\n"
            text = text.replace("@df\n", mount + "@df\n").replace(END_MARKER, row + END_MARKER)
            out.write(text.encode())
            return True
        elif how == "many-disks":
            paths = [f"/m{i:05d}{'m' * 293}" for i in range(1200)]
            mounts = "".join(f"/dev/x{i} {path} ext4 rw 0 0\n" for i, path in enumerate(paths))
            rows = "".join(f"/dev/x{i} 1000 {i % 1000} {1000 - i % 1000} 1% {path}\n" for i, path in enumerate(paths))
            text = text.replace("@df\n", mounts + "@df\n").replace(END_MARKER, rows + END_MARKER)
            out.write(text.encode())
            return True
        elif how == "stderr-escapes":
            process.stderr.write(b"\x1b]0;pwned\x07\x1b[2Jdf: [bold red]boom[/] \x1b[31mred\n")
            process.exit(1)
            return False
        elif how == "drip":
            for byte in text.encode():
                if process.channel.is_closing():
                    return False
                out.write(bytes([byte]))
                await asyncio.sleep(0.5)
        process.exit(0)
        return False

    def _path(self, name: str) -> Path:
        if self._dir is None:
            raise RuntimeError("the fleet is not running (use it as an async context manager)")
        return self._dir / name

    def _write_files(self) -> None:
        lines = []
        for host in self._hosts.values():
            public = host.host_key.export_public_key("openssh").decode().split()
            lines.append(f"{host_pattern(self.address, host.port)} {public[0]} {public[1]}\n")
        self.known_hosts_path.write_text("".join(lines))
        self.client_key.write_private_key(str(self.client_key_path))
        self.client_key_path.chmod(0o600)


def _raise_open_files_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
