"""The SSH transport: a pool of kept-open asyncssh connections, one per server.

A connection is opened on a server's first collection and reused for every
later one; any failure drops it, so the next collection reconnects. On it the
probe script keeps running in one session (`sh -s -- FIRST serve`) and answers
a request line per collection: a new session costs the server a fork, a login
shell and the script's start-up (about 5 ms of sshd CPU), the request a few
hundred bytes. Host keys are checked against ssh.known_hosts plus fleettop's own
data_dir/known_hosts; fleettop never writes the user's ~/.ssh.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
from asyncssh.encryption import get_default_encryption_algs

from fleettop.config import SSHConfig
from fleettop.jumps import JumpHop, parse_jump
from fleettop.private import MAX_KEY_FILE_BYTES, UnsafePath, private_dir, read_trusted_file, replace_own_file
from fleettop.probe.errors import CollectError, host_port
from fleettop.probe.parse import END_MARKER
from fleettop.probe.script import PROBE_SCRIPT, probe_command
from fleettop.probe.sshconfig import SSHConfigFiles, SSHConfigProblem
from fleettop.timing import scaled

# asyncssh logs every command at INFO and, at debug level 3, whole packets --
# passwords included. Nothing below WARNING from it reaches any handler.
logging.getLogger("asyncssh").setLevel(logging.WARNING)

OWN_KNOWN_HOSTS = "known_hosts"
# The probe prints a few KiB (3 KiB here; 40 KiB with 256 disks, 284 KiB with 256 disks
# whose names reach NAME_MAX; ~600 KiB on a container host with 300 overlay roots and 900
# pod volumes, every one listed twice): anything past this is not our script's answer,
# and is refused as unparsable instead of filling memory and the parser's time.
MAX_OUTPUT_BYTES = 1024 * 1024
MAX_STDERR_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024
ANSWER_END = f"\n{END_MARKER}\n".encode()
CHANNEL_ONLY_FAILURES = ("command_failed", "unparsable")
KEEPALIVE_COUNT_MAX = 3
# Connects in progress at once across all hosts (each host also has its own limit,
# ssh.max_concurrent_connects): enough for a fleet of distinct hosts to open in parallel,
# few enough that the handshakes' CPU and file descriptors stay bounded.
MAX_CONNECTS_IN_FLIGHT = 64
DEFAULT_KEYS = "~/.ssh/id_*"  # what asyncssh offers when given no key file, as ssh does
DEFAULT_PORT = 22  # a server's port 22 (the default) lets the ssh config's Port apply
BASTION_RETRY_AFTER = 5.0  # seconds a jump host's failed connect answers for it, before the next try
MAX_JUMP_HOPS = 8  # a ProxyJump chain longer than this (a loop through the ssh config) is refused
# AES-GCM first: in asyncssh it costs a fifth of ChaCha20-Poly1305 per packet (8 against
# 38 us, which builds two cipher objects per packet), and a collection is about a dozen
# packets. Both are in OpenSSH's default set; the rest of asyncssh's defaults follow.
ENCRYPTION_ALGS = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"] + [
    alg.decode() for alg in get_default_encryption_algs() if b"-gcm@" not in alg
]


def host_pattern(host: str, port: int) -> str:
    """How known_hosts names a host: bare on port 22, else [host]:port."""
    return host if port == 22 else f"[{host}]:{port}"


def describe_key(key: asyncssh.SSHKey) -> str:
    return f"{key.get_algorithm()} {key.get_fingerprint()}"


def record_known_host(path: Path, host: str, port: int, key: asyncssh.SSHKey) -> int:
    """Trust `key` for host:port in fleettop's own known_hosts, in place of any key trusted there
    before (an old key, maybe leaked, must not stay accepted beside the new one). The file is
    rewritten atomically, mode 0600. Returns how many earlier keys went. Blocking: run it in a thread."""
    public = key.export_public_key("openssh").decode().split()
    private_dir(path.parent)
    lines, removed = _known_hosts_without(path, host_pattern(host, port))
    lines.append(f"{host_pattern(host, port)} {public[0]} {public[1]}\n")
    replace_own_file(path, "".join(lines).encode())
    return removed


def forget_known_host(path: Path, host: str, port: int) -> int:
    """Take host:port's keys out of fleettop's own known_hosts (`fleettop untrust`); how many
    went. Blocking: run it in a thread."""
    lines, removed = _known_hosts_without(path, host_pattern(host, port))
    if removed:
        replace_own_file(path, "".join(lines).encode())
    return removed


def other_keys_in(path: Path, host: str, port: int, key: asyncssh.SSHKey | None) -> int:
    """How many keys other than `key` the user's known_hosts (ssh.known_hosts, which fleettop
    reads but never writes) trusts for host:port. Blocking: run it in a thread."""
    try:
        text = read_trusted_file(path, follow_links=True).decode(errors="replace")
    except FileNotFoundError:
        return 0
    trusted = asyncssh.import_known_hosts(text).match(host, "", port)[0]  # addr "": see trusted_state
    return len({known.public_data for known in trusted} - ({key.public_data} if key else set()))


def _known_hosts_without(path: Path, pattern: str) -> tuple[list[str], int]:
    """The lines of fleettop's known_hosts with `pattern` taken out of each line's host list (a
    line left with no host goes), and how many lines named it. Comments and @marker lines stay."""
    try:
        text = read_trusted_file(path, follow_links=False).decode(errors="replace")
    except FileNotFoundError:
        return [], 0
    kept, removed = [], 0
    for line in text.splitlines():
        fields = line.split(maxsplit=1)
        if len(fields) == 2 and not fields[0].startswith(("#", "@")) and pattern in fields[0].split(","):
            removed += 1
            others = [name for name in fields[0].split(",") if name != pattern]
            if others:
                kept.append(f"{','.join(others)} {fields[1]}\n")
        else:
            kept.append(f"{line}\n")
    return kept, removed


@dataclass(frozen=True)
class SSHTarget:
    """Everything needed to open one server's connection; a change means a new connection."""

    name: str
    host: str  # an address, or an alias of the ssh config
    port: int  # DEFAULT_PORT: the ssh config's Port, if it gives one
    username: str | None  # None: the ssh config's User, else ssh.username, else the local user
    auth: str  # agent | key | password
    key_file: Path | None = None
    secret: str | None = field(default=None, repr=False)  # the password, or the key's passphrase
    jump: str | None = None  # jumps.parse_jump spec; None: the ssh config's ProxyJump

    @property
    def where(self) -> str:
        return f"{self.name} ({host_port(self.host, self.port)})"


@dataclass(frozen=True)
class Hop:
    """One jump host, resolved: what it was written as, and where it leads."""

    spec: str  # as written in jump: or ProxyJump (named in errors: "via bastion1")
    alias: str  # what the ssh config is asked about, and asyncssh connects to
    address: str
    port: int
    username: str
    connect_timeout: float  # its Host block's ConnectTimeout, else ssh.connect_timeout
    keepalive_interval: float  # its ServerAliveInterval, else ssh.keepalive_interval

    @property
    def where(self) -> str:
        # an ssh config alias is shown with what it resolved to
        return self.spec if self.alias == self.address else f"{self.spec} ({host_port(self.address, self.port)})"


@dataclass(frozen=True)
class Route:
    """How a target is reached, as the ssh config and fleettop's settings resolve it together."""

    address: str
    port: int
    username: str
    hops: tuple[Hop, ...]
    connect_timeout: float
    keepalive_interval: float
    identity_files: tuple[str, ...]  # the ssh config's IdentityFile, offered when fleettop names no key
    known_hosts_files: tuple[Path, ...]  # the ssh config's UserKnownHostsFile: trusted too

    def summary(self, target: SSHTarget) -> dict[str, Any]:
        """What `fleettop servers test` says it resolved: address, port, user, the auth offered,
        the jump hosts (first reached first)."""
        keys = [str(target.key_file)] if target.key_file else list(self.identity_files) or [DEFAULT_KEYS]
        auth = {"password": "password", "key": f"key {', '.join(keys)}"}.get(target.auth, f"agent, {', '.join(keys)}")
        return {
            "address": self.address,
            "port": self.port,
            "alias": target.host if target.host != self.address else None,
            "user": self.username,
            "auth": auth,
            "jump": [f"{hop.username}@{host_port(hop.address, hop.port)}" for hop in self.hops],
        }


class _Client(asyncssh.SSHClient):
    """Remembers the host key a server presented, so a refusal can name its fingerprint."""

    def __init__(self) -> None:
        self.presented: tuple[str, asyncssh.SSHKey] | None = None  # (address, key)
        self.lost = False

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        # Called only for a key known_hosts does not trust: refuse it, but remember it.
        self.presented = (addr, key)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


@dataclass
class _HostGate:
    """Connects in progress to one (host, port): that sshd's MaxStartups counts them."""

    semaphore: asyncio.Semaphore
    users: int = 0  # holders and waiters; the gate is dropped when none is left


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    target: SSHTarget | None = None
    connection: asyncssh.SSHClientConnection | None = None
    client: _Client | None = None
    session: _ProbeSession | None = None  # the probe, idle on `connection`, waiting for a request
    route: Route | None = None  # how `connection` was reached
    busy: int = 0  # collections using the slot now

    def usable_for(self, target: SSHTarget) -> bool:
        return self.connection is not None and self.target == target and not self.client.lost

    def take_session(self, connection: asyncssh.SSHClientConnection) -> _ProbeSession | None:
        """The idle probe session on this connection, now busy; None if there is none (or it ended)."""
        session, self.session = self.session, None
        if session is not None and (self.connection is not connection or not session.alive):
            session.close()
            session = None
        return session

    def put_session(self, connection: asyncssh.SSHClientConnection, session: _ProbeSession) -> None:
        """Keep a session that answered cleanly for the next collection (one per connection:
        a concurrent collection's extra session is closed)."""
        if self.session is None and self.connection is connection and session.alive:
            self.session = session
        else:
            session.close()

    def drop(self) -> None:
        if self.session is not None:
            self.session.close()
        if self.connection is not None:
            self.connection.close()
        self.connection = self.client = self.target = self.session = self.route = None


@dataclass
class _Bastion:
    """The kept connection to one jump host, and its last failure (shared by the servers that
    waited on that attempt)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    connection: asyncssh.SSHClientConnection | None = None
    client: _Client | None = None
    failure: CollectError | None = None
    failed_at: float = 0.0


class _SessionEnded(Exception):
    """A kept probe session ended while idle (its shell killed on the server, say): not a failure
    of this collection, which starts a new session."""


class _ProbeSession:
    """The probe script running in one channel (`sh -s -- FIRST serve`), answering a request line
    ("0", or "1" on first contact) with one framed answer. Its stderr is read as it comes
    (the last MAX_STDERR_BYTES kept), so a chatty shell never stalls the channel."""

    def __init__(self, process: asyncssh.SSHClientProcess):
        self._process = process
        self._answered = False
        self._stderr = bytearray()
        self._stderr_reader = asyncio.ensure_future(self._read_stderr())

    @classmethod
    async def start(cls, connection: asyncssh.SSHClientConnection, first_contact: bool, script: str) -> _ProbeSession:
        process = await connection.create_process(probe_command(first_contact), encoding=None)
        process.stdin.write(script.encode())
        return cls(process)

    @property
    def alive(self) -> bool:
        process = self._process
        return process.exit_status is None and process.exit_signal is None and not process.channel.is_closing()

    def request(self, first_contact: bool) -> None:
        try:
            self._process.stdin.write(b"1\n" if first_contact else b"0\n")
        except BrokenPipeError:  # its channel closed after take_session looked
            raise _SessionEnded from None

    async def answer(self, where: str) -> tuple[str, bool]:
        """The next answer, up to and with its end line; and whether nothing followed it (a
        session that sent more than its answer is not asked again). Raises CollectError, or
        _SessionEnded if a session that had answered before ended without a byte more."""
        buffer = bytearray()
        while True:
            data = await self._process.stdout.read(READ_CHUNK)
            if not data:
                if self._answered and not buffer:
                    raise _SessionEnded
                return await self._ended(where, bytes(buffer)), False
            if len(buffer) + len(data) > MAX_OUTPUT_BYTES:
                # A hostile or broken host cannot make us hold more than this (an endless
                # answer fails fast, not at the timeout).
                raise CollectError("unparsable", where, f"probe output exceeds {MAX_OUTPUT_BYTES // 1024} KiB: refused")
            searched = max(0, len(buffer) - len(ANSWER_END))
            buffer += data
            end = buffer.find(ANSWER_END, searched)
            if end >= 0:
                end += len(ANSWER_END)
                self._answered = True
                return buffer[:end].decode(errors="replace"), end == len(buffer)

    async def _ended(self, where: str, stdout: bytes) -> str:
        """stdout reached EOF before an answer's end: the shell's exit decides what it was."""
        completed = await self._process.wait()
        await self._stderr_reader
        if completed.exit_status is None and not completed.exit_signal:
            # The channel closed without an exit status: the connection went (another
            # collection's failure may have dropped the shared connection), not the probe.
            raise CollectError("unreachable", where, "connection lost before the probe finished")
        if completed.exit_status != 0:
            lines = self._stderr.decode(errors="replace").strip().splitlines()
            if completed.exit_signal:
                status = f"was killed by signal {completed.exit_signal[0]}"
            else:
                status = f"exited with status {completed.exit_status}"
            raise CollectError("command_failed", where, f"probe {status}: {lines[-1] if lines else 'no message'}")
        return stdout.decode(errors="replace")  # exited 0 without an end line: the parser says what is wrong

    async def _read_stderr(self) -> None:
        with contextlib.suppress(asyncssh.Error, OSError):
            while data := await self._process.stderr.read(READ_CHUNK):
                self._stderr += data
                del self._stderr[:-MAX_STDERR_BYTES]

    def close(self, *, kill: bool = False) -> None:
        """End the session: an idle shell exits as its channel closes; with `kill`, a probe
        still running (timed out, cut short, cancelled) is killed rather than left on the server."""
        if kill and self.alive:
            with contextlib.suppress(OSError, asyncssh.Error):
                self._process.send_signal("KILL")
        self._process.close()
        self._stderr_reader.cancel()


class SSHPool:
    def __init__(self, ssh: SSHConfig, data_dir: Path, script: str = PROBE_SCRIPT):
        self._ssh = ssh
        self._script = script
        self.own_known_hosts = Path(data_dir) / OWN_KNOWN_HOSTS
        # By the files read (see _trusted_hosts): their stamps when read, and what they trust.
        self._known_hosts: dict[tuple[Path, ...], tuple[tuple, asyncssh.SSHKnownHosts]] = {}
        self._known_hosts_lock = asyncio.Lock()
        # Opening many connections at once to one sshd trips its MaxStartups: only so many at a
        # time per (host, port); and a global cap, larger, so that distinct hosts open in parallel.
        self._connect_gate = asyncio.Semaphore(max(MAX_CONNECTS_IN_FLIGHT, ssh.max_concurrent_connects))
        self._host_gates: dict[tuple[str, int], _HostGate] = {}
        self._slots: dict[str, _Slot] = {}
        self.max_open = ssh.max_open_connections  # kept open at most; fleettop.queue.runtime may lower it
        self._client_keys: dict[tuple[Path, str | None], asyncssh.SSHKey] = {}
        self._ssh_config = SSHConfigFiles(ssh.config_files)
        # One kept connection per jump host (keyed by the chain that leads to it), shared by every
        # server behind it: asyncssh given a ProxyJump string would open one per server.
        self._bastions: dict[tuple[Hop, ...], _Bastion] = {}

    async def probe(self, target: SSHTarget, first_contact: bool, *, keep: bool = True) -> str:
        """The probe's answer from the server, over its kept-open connection; or CollectError.
        `keep=False` closes the connection afterwards (a one-off test, a server collected
        seldom); so does a new one past `max_open` kept connections."""
        slot = self._slots.setdefault(target.name, _Slot())
        keep = keep and (slot.usable_for(target) or self.open_connections() < self.max_open)
        slot.busy += 1
        try:
            return await self._probe(slot, target, first_contact, keep)
        finally:
            slot.busy -= 1

    def open_connections(self) -> int:
        return sum(1 for slot in self._slots.values() if slot.connection is not None)

    def open_names(self) -> set[str]:
        """The servers (by name) whose connection is open."""
        return {name for name, slot in self._slots.items() if slot.connection is not None}

    def release(self, names: set[str]) -> int:
        """Close the connections of these servers, those not in use; returns how many closed."""
        closed = 0
        for name in names:
            slot = self._slots.get(name)
            if slot is not None and not slot.busy and not slot.lock.locked():
                closed += slot.connection is not None
                slot.drop()
                del self._slots[name]
        return closed

    async def _probe(self, slot: _Slot, target: SSHTarget, first_contact: bool, keep: bool) -> str:
        connection = await self._connection(slot, target)
        ok = False
        try:
            output = await self._ask(slot, target, connection, first_contact, keep)
            ok = True
            return output
        except CollectError as exc:
            # The probe failed or answered nonsense on a sound connection (its session is
            # closed already): keep the connection, so a concurrent collection of this server
            # on it is not cut short as well.
            ok = exc.kind in CHANNEL_ONLY_FAILURES
            lost = self._lost_hop(slot.route) if exc.kind == "unreachable" else None
            if lost is not None:  # the connection went with the jump host it ran through
                raise CollectError(exc.kind, target.where, f"via {lost.where}: connection lost") from None
            raise
        finally:
            # A failure of the connection: the next collection opens a fresh one. Only this
            # connection: a concurrent collection may have replaced it. One not kept closes
            # once its last user is done.
            if slot.connection is connection and (not ok or (not keep and slot.busy <= 1)):
                slot.drop()

    async def host_key(self, target: SSHTarget) -> asyncssh.SSHKey:
        """The key the server presents, fetched without authenticating (for `fleettop trust`),
        through its jump hosts if it has any."""
        route = await self.route(target)
        tunnel = await self._tunnel(route, target)
        try:
            async with asyncio.timeout(route.connect_timeout):
                key = await asyncssh.get_server_host_key(route.address, route.port, tunnel=tunnel, config=None)
        except Exception as exc:
            raise self._connect_error(target, exc, None, route=route) from None
        if key is None:
            raise CollectError("unreachable", target.where, "the server presented no host key")
        return key

    async def trusted_state(self, target: SSHTarget, key: asyncssh.SSHKey) -> str:
        """'trusted', 'changed' (other keys are trusted for this host) or 'unknown'."""
        route = await self.route(target)
        known_hosts = await self._trusted_hosts(target.where, route.known_hosts_files)
        # No address: asyncssh parses a given one as an IP (a host name raised ValueError), and
        # takes `host` as the address itself when it is one.
        trusted = known_hosts.match(route.address, "", route.port)[0]
        return "trusted" if key in trusted else "changed" if trusted else "unknown"

    async def route(self, target: SSHTarget) -> Route:
        """How the target is reached: the ssh config (read in a thread) under fleettop's own
        settings. Raises CollectError for a config or jump spec that cannot be used."""
        try:
            return await asyncio.to_thread(self._resolve, target)
        except SSHConfigProblem as exc:
            raise CollectError("unreachable", target.where, str(exc)) from None
        except ValueError as exc:
            raise CollectError("unreachable", target.where, str(exc)) from None

    def _resolve(self, target: SSHTarget) -> Route:
        own_port = None if target.port == DEFAULT_PORT else target.port
        found = self._ssh_config.lookup(target.host, target.username, own_port)
        spec = target.jump if target.jump is not None else found.proxy_jump
        hops = self._hops(spec, "jump" if target.jump is not None else "ProxyJump")
        return Route(
            address=found.address or target.host,
            port=own_port or found.port or DEFAULT_PORT,
            username=target.username or found.username or self._ssh.username or getpass.getuser(),
            hops=hops,
            connect_timeout=found.connect_timeout or self._ssh.connect_timeout,
            keepalive_interval=found.keepalive_interval or self._ssh.keepalive_interval,
            identity_files=found.identity_files,
            known_hosts_files=found.known_hosts_files,  # this host's own; a jump host's are its own
        )

    def _hops(self, spec: str | None, named_by: str, depth: int = 0) -> tuple[Hop, ...]:
        """The jump hosts of a spec, each resolved by the ssh config; the first hop's own
        ProxyJump goes before it, as OpenSSH chains them (a chain that never ends, `Host *` with
        a ProxyJump its jump host also matches, is refused)."""
        if not spec:
            return ()
        try:
            written = parse_jump(spec)
        except ValueError as exc:
            raise ValueError(f"{named_by} {spec!r}: {exc}") from None
        too_long = f"{named_by} {spec!r}: more than {MAX_JUMP_HOPS} jump hosts (a ProxyJump loop in the ssh config?)"
        if depth > MAX_JUMP_HOPS:
            raise ValueError(too_long)
        hops: list[Hop] = []
        for index, jump in enumerate(written):
            hop = self._hop(jump)
            if index == 0:
                first_jump = self._ssh_config.lookup(hop.alias, jump.username, jump.port).proxy_jump
                hops = list(self._hops(first_jump, named_by, depth + 1))
            hops.append(hop)
        if len(hops) > MAX_JUMP_HOPS:
            raise ValueError(too_long)
        return tuple(hops)

    def _hop(self, jump: JumpHop) -> Hop:
        found = self._ssh_config.lookup(jump.host, jump.username, jump.port)
        return Hop(
            spec=str(jump),
            alias=jump.host,
            address=found.address or jump.host,
            port=jump.port or found.port or DEFAULT_PORT,
            username=jump.username or found.username or self._ssh.username or getpass.getuser(),
            connect_timeout=found.connect_timeout or self._ssh.connect_timeout,
            keepalive_interval=found.keepalive_interval or self._ssh.keepalive_interval,
        )

    async def close(self) -> None:
        connections = [slot.connection for slot in self._slots.values() if slot.connection is not None]
        for slot in self._slots.values():
            slot.drop()
        self._slots.clear()
        # The jump hosts after the servers behind them, the last hop of a chain first.
        for chain in sorted(self._bastions, key=len, reverse=True):
            bastion = self._bastions.pop(chain)
            if bastion.connection is not None:
                connections.append(bastion.connection)
                bastion.connection.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await asyncio.gather(*(connection.wait_closed() for connection in connections), return_exceptions=True)

    async def _connection(self, slot: _Slot, target: SSHTarget) -> asyncssh.SSHClientConnection:
        async with slot.lock:  # concurrent collections of one server share one connect
            if slot.usable_for(target):
                return slot.connection
            slot.drop()
            route = await self.route(target)
            known_hosts = await self._trusted_hosts(target.where, route.known_hosts_files)
            options, offered = await self._auth_options(target)
            tunnel = await self._tunnel(route, target)
            client = _Client()
            async with self._connect_turn(route.address, route.port):
                try:
                    connection = await asyncssh.connect(
                        target.host,
                        route.port,
                        username=route.username,
                        known_hosts=known_hosts,
                        # The rest of the ssh config (IdentityFile, IdentityAgent, Ciphers...)
                        # applies as asyncssh reads it; the jump hosts are fleettop's (tunnel).
                        config=self._config_paths(),
                        tunnel=tunnel,
                        client_factory=lambda: client,
                        connect_timeout=route.connect_timeout,
                        login_timeout=route.connect_timeout,
                        keepalive_interval=route.keepalive_interval,
                        keepalive_count_max=KEEPALIVE_COUNT_MAX,
                        encryption_algs=ENCRYPTION_ALGS,
                        **options,
                    )
                except Exception as exc:
                    raise self._connect_error(target, exc, client, offered, route=route) from None
            slot.target, slot.connection, slot.client, slot.route = target, connection, client, route
            return connection

    def _lost_hop(self, route: Route | None) -> Hop | None:
        """The first jump host of the route whose kept connection is lost, if any."""
        for index in range(len(route.hops) if route else 0):
            bastion = self._bastions.get(route.hops[: index + 1])
            if bastion is not None and bastion.client is not None and bastion.client.lost:
                return route.hops[index]
        return None

    def _config_paths(self) -> list[Path] | None:
        """The ssh config files there are (asyncssh fails on a missing one; ssh takes it as empty)."""
        return [path for path in self._ssh_config.paths if path.exists()] or None

    async def _tunnel(self, route: Route, target: SSHTarget) -> asyncssh.SSHClientConnection | None:
        """The kept connection to the last jump host of the route (None: direct), each hop opened
        through the one before. A hop that cannot be reached fails every server behind it,
        named: "via bastion1: connection refused"."""
        connection = None
        for index in range(len(route.hops)):
            connection = await self._bastion(route.hops[: index + 1], connection, target)
        return connection

    async def _bastion(
        self, chain: tuple[Hop, ...], through: asyncssh.SSHClientConnection | None, target: SSHTarget
    ) -> asyncssh.SSHClientConnection:
        bastion = self._bastions.setdefault(chain, _Bastion())
        async with bastion.lock:
            if bastion.connection is not None and not bastion.client.lost:
                return bastion.connection
            if bastion.failure is not None and time.monotonic() - bastion.failed_at < scaled(BASTION_RETRY_AFTER):
                # A round of collections of the servers behind it shares one attempt (one
                # reconnect per bastion, not one per server).
                raise CollectError(bastion.failure.kind, target.where, f"via {bastion.failure}")
            hop = chain[-1]
            bastion.connection = bastion.client = None
            hop_target = SSHTarget(
                name=hop.spec,
                host=hop.alias,
                port=hop.port,
                username=hop.username,
                auth="agent",
                key_file=self._ssh.key_file,
            )
            hop_files = self._ssh_config.lookup(hop.alias, hop.username, hop.port).known_hosts_files
            known_hosts = await self._trusted_hosts(target.where, hop_files)
            options, offered = await self._auth_options(hop_target)
            client = _Client()
            try:
                async with self._connect_turn(hop.address, hop.port):
                    connection = await asyncssh.connect(
                        hop.alias,
                        hop.port,
                        username=hop.username,
                        known_hosts=known_hosts,
                        config=self._config_paths(),
                        tunnel=through,
                        client_factory=lambda: client,
                        connect_timeout=hop.connect_timeout,
                        login_timeout=hop.connect_timeout,
                        keepalive_interval=hop.keepalive_interval,
                        keepalive_count_max=KEEPALIVE_COUNT_MAX,
                        encryption_algs=ENCRYPTION_ALGS,
                        **options,
                    )
            except Exception as exc:
                route = Route(
                    hop.address, hop.port, hop.username, (), hop.connect_timeout, hop.keepalive_interval, (), ()
                )
                failure = self._connect_error(hop_target, exc, client, offered, route=route, bastion=True)
                # Named as written ("bastion1"), not as a server is ("name (host:port)").
                failure = CollectError(failure.kind, hop.where, str(failure).removeprefix(f"{hop_target.where}: "))
                bastion.failure, bastion.failed_at = failure, time.monotonic()
                raise CollectError(failure.kind, target.where, f"via {failure}") from None
            bastion.connection, bastion.client, bastion.failure = connection, client, None
            return connection

    @contextlib.asynccontextmanager
    async def _connect_turn(self, host: str, port: int):
        """A turn to open a connection: one of the host's max_concurrent_connects, then one of
        the global MAX_CONNECTS_IN_FLIGHT (the host's first, so a host's queue never holds
        global turns)."""
        key = (host, port)
        gate = self._host_gates.get(key)
        if gate is None:
            gate = self._host_gates[key] = _HostGate(asyncio.Semaphore(self._ssh.max_concurrent_connects))
        gate.users += 1
        try:
            async with gate.semaphore, self._connect_gate:
                yield
        finally:
            gate.users -= 1
            if gate.users == 0:
                del self._host_gates[key]

    async def _ask(
        self, slot: _Slot, target: SSHTarget, connection: asyncssh.SSHClientConnection, first_contact: bool, keep: bool
    ) -> str:
        """One answer from the slot's idle probe session, or from a new one."""
        timeout = self._ssh.command_timeout
        session = slot.take_session(connection)
        clean = False
        try:
            async with asyncio.timeout(timeout):
                if session is not None:
                    try:
                        session.request(first_contact)
                        text, clean = await session.answer(target.where)
                        return text
                    except _SessionEnded:
                        session.close()
                        session = None
                session = await _ProbeSession.start(connection, first_contact, self._script)
                text, clean = await session.answer(target.where)
                return text
        except TimeoutError:
            raise CollectError("timeout", target.where, f"probe did not finish within {timeout:g} s") from None
        except asyncssh.ChannelOpenError as exc:
            if connection.is_closed():
                raise CollectError("unreachable", target.where, f"connection lost: {exc.reason}") from None
            raise CollectError("command_failed", target.where, f"the server refused a session: {exc.reason}") from None
        except (asyncssh.Error, OSError) as exc:
            raise CollectError("unreachable", target.where, f"connection lost: {_reason(exc)}") from None
        finally:
            if session is not None:
                if clean and keep:
                    slot.put_session(connection, session)
                else:
                    session.close(kill=not clean)

    def _trust_files(self, also: tuple[Path, ...]) -> tuple[Path, ...]:
        base = (self._ssh.known_hosts, self.own_known_hosts)
        return (*base, *sorted(set(also) - set(base)))

    async def _trusted_hosts(self, where: str, also: tuple[Path, ...] = ()) -> asyncssh.SSHKnownHosts:
        """Both known_hosts files and `also`: the UserKnownHostsFile of the ssh config's Host blocks
        that match this host. As OpenSSH, such a file vouches for the hosts its blocks match, never
        for the rest of the fleet: each set of files is its own SSHKnownHosts, parsed once and again
        only when one of its files changes."""
        files = self._trust_files(also)
        async with self._known_hosts_lock:
            stamp = await asyncio.to_thread(_stamp, files)
            cached = self._known_hosts.get(files)
            if cached is None or cached[0] != stamp:
                try:
                    cached = (stamp, await asyncio.to_thread(self._read_known_hosts, files))
                except (OSError, ValueError, UnsafePath) as exc:
                    raise CollectError("hostkey_unknown", where, f"known_hosts cannot be read: {exc}") from None
                self._known_hosts[files] = cached
            return cached[1]

    def _read_known_hosts(self, files: tuple[Path, ...]) -> asyncssh.SSHKnownHosts:
        """Each file a regular file no other user may write (a planted or writable known_hosts
        would trust an attacker's key); fleettop's own is never read through a link. A
        UserKnownHostsFile of the ssh config that is not such a file (/dev/null, as labs set with
        StrictHostKeyChecking no) trusts nothing: skipped, where ssh.known_hosts would fail."""
        known_hosts = asyncssh.SSHKnownHosts()
        base = {self._ssh.known_hosts, self.own_known_hosts}
        for path in files:
            try:
                data = read_trusted_file(path, follow_links=path != self.own_known_hosts)
            except FileNotFoundError:
                continue
            except (OSError, UnsafePath):
                if path in base:
                    raise
                continue
            known_hosts.load(data.decode(errors="replace"))
        return known_hosts

    async def _auth_options(self, target: SSHTarget) -> tuple[dict, str]:
        """asyncssh's options for the target's auth method, and what they offer the server (in
        words, for an authentication failure)."""
        if target.auth == "password":
            if target.secret is None:
                raise CollectError("auth_failed", target.where, "no password stored for password authentication")
            return {"password": target.secret, "client_keys": None, "agent_path": None}, "offered: password"
        if target.auth == "key":  # that key alone
            if target.key_file is None:
                return {
                    "client_keys": (),
                    "agent_path": None,
                    "password": None,
                }, f"offered: {DEFAULT_KEYS}"  # (): the defaults
            return {
                "client_keys": [await self._client_key(target)],
                "agent_path": None,
                "password": None,
            }, f"offered: {target.key_file}"
        # agent: $SSH_AUTH_SOCK's keys and, as OpenSSH offers IdentityFile beside them, the key
        # file (the server's or ssh.key_file), else the ~/.ssh/id_* defaults. A key file that
        # cannot be used (its passphrase not stored here: the agent may hold that key) is left out.
        options: dict = {"password": None}
        offered = ["agent"] if os.environ.get("SSH_AUTH_SOCK") else []
        notes = [] if offered else ["no ssh-agent: SSH_AUTH_SOCK is unset"]
        if target.key_file is None:
            offered.append(DEFAULT_KEYS)
        else:
            try:
                options["client_keys"] = [await self._client_key(target)]
                offered.append(str(target.key_file))
            except CollectError as exc:
                offered.append(DEFAULT_KEYS)
                notes.append(f"not the {str(exc).removeprefix(f'{target.where}: ')}")  # "key file PATH: why"
        return options, "; ".join([f"offered: {', '.join(offered)}", *notes])

    async def _client_key(self, target: SSHTarget) -> asyncssh.SSHKey:
        """The key file, read and decrypted once (a passphrase's KDF is slow), in a thread."""
        cache_key = (target.key_file, target.secret)
        if cache_key not in self._client_keys:
            try:
                self._client_keys[cache_key] = await asyncio.to_thread(_read_client_key, target.key_file, target.secret)
            except UnsafePath as exc:  # /dev/zero, a FIFO, a link: refused before a byte is read
                raise CollectError("auth_failed", target.where, f"key file {exc}") from None
            except OSError as exc:
                raise CollectError(
                    "auth_failed", target.where, f"key file {target.key_file}: {exc.strerror or exc}"
                ) from None
            except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
                raise CollectError("auth_failed", target.where, f"key file {target.key_file}: {exc}") from None
        return self._client_keys[cache_key]

    def _connect_error(
        self,
        target: SSHTarget,
        exc: Exception,
        client: _Client | None,
        offered: str = "",
        *,
        route: Route | None = None,
        bastion: bool = False,
    ) -> CollectError:
        where = target.where
        address, port = (route.address, route.port) if route else (target.host, target.port)
        username = route.username if route else target.username
        timeout = route.connect_timeout if route else self._ssh.connect_timeout
        # A jump host is trusted by adding its key to a known_hosts file; a server, by `fleettop trust`.
        check = (
            f"check it and add it to {self._ssh.known_hosts}"
            if bastion
            else f"check it and run: fleettop trust {target.name}"
        )
        if isinstance(exc, asyncssh.HostKeyNotVerifiable):
            if client is None or client.presented is None:
                return CollectError("hostkey_unknown", where, f"host key not verifiable: {_reason(exc)}")
            addr, key = client.presented
            files = self._trust_files(route.known_hosts_files if route else ())
            _, known_hosts = self._known_hosts.get(files, ((), asyncssh.SSHKnownHosts()))
            trusted = known_hosts.match(address, addr, port)
            if trusted[0] or trusted[1]:
                return CollectError(
                    "hostkey_changed",
                    where,
                    f"host key CHANGED, now {describe_key(key)}; refusing to connect (if the change is expected, "
                    f"{check})",
                )
            return CollectError("hostkey_unknown", where, f"host key unknown ({describe_key(key)}); {check}")
        if isinstance(exc, asyncssh.PermissionDenied):
            return CollectError("auth_failed", where, f"authentication failed as {username} ({offered or target.auth})")
        if isinstance(exc, asyncssh.ChannelOpenError) and route is not None and route.hops:
            return CollectError("unreachable", where, f"{route.hops[-1].spec} cannot reach it: {exc.reason}")
        if isinstance(exc, TimeoutError):
            return CollectError("unreachable", where, f"connection timed out after {timeout:g} s")
        if isinstance(exc, socket.gaierror):
            return CollectError("unreachable", where, f"cannot resolve {address}: {exc.strerror}")
        if isinstance(exc, ConnectionRefusedError):
            return CollectError("unreachable", where, "connection refused")
        if isinstance(exc, (OSError, asyncssh.Error)):
            return CollectError("unreachable", where, f"cannot connect: {_reason(exc)}")
        return CollectError("unreachable", where, f"cannot connect: {type(exc).__name__}: {exc}")


def _read_client_key(path: Path, passphrase: str | None) -> asyncssh.SSHKey:
    """A private key from a regular file of at most MAX_KEY_FILE_BYTES, read without following a
    link and with a bound (a key_file of /dev/zero must not fill memory, nor a FIFO hang a thread)."""
    return asyncssh.import_private_key(
        read_trusted_file(path, follow_links=False, limit=MAX_KEY_FILE_BYTES), passphrase
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.Error):
        return exc.reason
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _stamp(files: tuple[Path, ...]) -> tuple:
    marks = []
    for path in files:
        try:
            info = path.stat()
            marks.append((info.st_mtime_ns, info.st_size, info.st_ino, info.st_mode, info.st_uid))  # a chmod too
        except OSError:
            marks.append(None)
    return tuple(marks)
