"""The SSH transport: a pool of kept-open asyncssh connections, one per server.

A connection is opened on a server's first collection and reused for every
later one (one exec each); any failure drops it, so the next collection
reconnects. Host keys are checked against ssh.known_hosts plus fleettop's own
data_dir/known_hosts; fleettop never writes the user's ~/.ssh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
from asyncssh.encryption import get_default_encryption_algs

from app.config import SSHConfig
from app.probe.errors import CollectError

# asyncssh logs every command at INFO and, at debug level 3, whole packets --
# passwords included. Nothing below WARNING from it reaches any handler.
logging.getLogger("asyncssh").setLevel(logging.WARNING)

OWN_KNOWN_HOSTS = "known_hosts"
# The probe prints a few KiB (tens with hundreds of mounts): anything past this is not
# our script's answer, and is refused as unparsable instead of filling memory.
MAX_OUTPUT_BYTES = 2 * 1024 * 1024
MAX_STDERR_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024
CHANNEL_ONLY_FAILURES = ("command_failed", "unparsable")
KEEPALIVE_COUNT_MAX = 3
# Connects in progress at once across all hosts (each host also has its own limit,
# ssh.max_concurrent_connects): enough for a fleet of distinct hosts to open in parallel,
# few enough that the handshakes' CPU and file descriptors stay bounded.
MAX_CONNECTS_IN_FLIGHT = 64
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


def append_known_host(path: Path, host: str, port: int, key: asyncssh.SSHKey) -> None:
    """Record a trusted host key in fleettop's own known_hosts file (blocking; run it in a thread)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    public = key.export_public_key("openssh").decode().split()
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"{host_pattern(host, port)} {public[0]} {public[1]}\n")


@dataclass(frozen=True)
class SSHTarget:
    """Everything needed to open one server's connection; a change means a new connection."""

    name: str
    host: str
    port: int
    username: str
    auth: str  # agent | key | password
    key_file: Path | None = None
    secret: str | None = field(default=None, repr=False)  # the password, or the key's passphrase

    @property
    def where(self) -> str:
        return f"{self.name} ({host_pattern(self.host, self.port)})"


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

    def usable_for(self, target: SSHTarget) -> bool:
        return self.connection is not None and self.target == target and not self.client.lost

    def drop(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.connection = self.client = self.target = None


class SSHPool:
    def __init__(self, ssh: SSHConfig, data_dir: Path):
        self._ssh = ssh
        self.own_known_hosts = Path(data_dir) / OWN_KNOWN_HOSTS
        self._known_hosts_files = (ssh.known_hosts, self.own_known_hosts)
        self._known_hosts = asyncssh.SSHKnownHosts()
        self._known_hosts_stamp: tuple | None = None
        self._known_hosts_lock = asyncio.Lock()
        # Opening many connections at once to one sshd trips its MaxStartups: only so many at a
        # time per (host, port); and a global cap, larger, so that distinct hosts open in parallel.
        self._connect_gate = asyncio.Semaphore(max(MAX_CONNECTS_IN_FLIGHT, ssh.max_concurrent_connects))
        self._host_gates: dict[tuple[str, int], _HostGate] = {}
        self._slots: dict[str, _Slot] = {}
        self._client_keys: dict[tuple[Path, str | None], asyncssh.SSHKey] = {}

    async def run(self, target: SSHTarget, command: str, stdin: str, *, keep: bool = True) -> str:
        """Run one command on the server's kept-open connection; its stdout, or CollectError."""
        slot = self._slots.setdefault(target.name, _Slot())
        connection = await self._connection(slot, target)
        ok = False
        try:
            output = await self._exec(target, connection, command, stdin)
            ok = True
            return output
        except CollectError as exc:
            # The probe failed or answered nonsense on a sound connection (its channel is
            # closed already): keep the connection, so a concurrent collection of this server
            # on it is not cut short as well.
            ok = exc.kind in CHANNEL_ONLY_FAILURES
            raise
        finally:
            # A failure of the connection (or a one-off test): the next collection opens a
            # fresh one. Only this connection: a concurrent collection may have replaced it.
            if not (ok and keep) and slot.connection is connection:
                slot.drop()

    async def host_key(self, target: SSHTarget) -> asyncssh.SSHKey:
        """The key the server presents, fetched without authenticating (for `fleettop trust`)."""
        try:
            async with asyncio.timeout(self._ssh.connect_timeout):
                key = await asyncssh.get_server_host_key(target.host, target.port, config=None)
        except Exception as exc:
            raise self._connect_error(target, exc, None) from None
        if key is None:
            raise CollectError("unreachable", target.where, "the server presented no host key")
        return key

    async def trusted_state(self, target: SSHTarget, key: asyncssh.SSHKey) -> str:
        """'trusted', 'changed' (other keys are trusted for this host) or 'unknown'."""
        known_hosts = await self._trusted_hosts(target.where)
        trusted = known_hosts.match(target.host, target.host, target.port)[0]
        return "trusted" if key in trusted else "changed" if trusted else "unknown"

    async def close(self) -> None:
        connections = [slot.connection for slot in self._slots.values() if slot.connection is not None]
        for slot in self._slots.values():
            slot.drop()
        self._slots.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await asyncio.gather(*(connection.wait_closed() for connection in connections), return_exceptions=True)

    async def _connection(self, slot: _Slot, target: SSHTarget) -> asyncssh.SSHClientConnection:
        async with slot.lock:  # concurrent collections of one server share one connect
            if slot.usable_for(target):
                return slot.connection
            slot.drop()
            known_hosts = await self._trusted_hosts(target.where)
            options = await self._auth_options(target)
            client = _Client()
            async with self._connect_turn(target):
                try:
                    connection = await asyncssh.connect(
                        target.host,
                        target.port,
                        username=target.username,
                        known_hosts=known_hosts,
                        config=None,
                        client_factory=lambda: client,
                        connect_timeout=self._ssh.connect_timeout,
                        login_timeout=self._ssh.connect_timeout,
                        keepalive_interval=self._ssh.keepalive_interval,
                        keepalive_count_max=KEEPALIVE_COUNT_MAX,
                        encryption_algs=ENCRYPTION_ALGS,
                        **options,
                    )
                except Exception as exc:
                    raise self._connect_error(target, exc, client) from None
            slot.target, slot.connection, slot.client = target, connection, client
            return connection

    @contextlib.asynccontextmanager
    async def _connect_turn(self, target: SSHTarget):
        """A turn to open a connection: one of the host's max_concurrent_connects, then one of
        the global MAX_CONNECTS_IN_FLIGHT (the host's first, so a host's queue never holds
        global turns)."""
        key = (target.host, target.port)
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

    async def _exec(self, target: SSHTarget, connection: asyncssh.SSHClientConnection, command: str, stdin: str) -> str:
        timeout = self._ssh.command_timeout
        process = None
        try:
            async with asyncio.timeout(timeout):
                # Bytes, read in bounded chunks: a hostile or broken host cannot make us hold
                # more than MAX_OUTPUT_BYTES (an endless answer fails fast, not at the timeout).
                process = await connection.create_process(command, encoding=None)
                process.stdin.write(stdin.encode())
                process.stdin.write_eof()
                errors = asyncio.ensure_future(_read_capped(process.stderr, MAX_STDERR_BYTES, None))
                try:
                    stdout = await _read_capped(process.stdout, MAX_OUTPUT_BYTES, target.where)
                    stderr = await errors
                finally:
                    errors.cancel()
                completed = await process.wait()
        except TimeoutError:
            raise CollectError("timeout", target.where, f"probe did not finish within {timeout:g} s") from None
        except asyncssh.ChannelOpenError as exc:
            if connection.is_closed():
                raise CollectError("unreachable", target.where, f"connection lost: {exc.reason}") from None
            raise CollectError("command_failed", target.where, f"the server refused a session: {exc.reason}") from None
        except (asyncssh.Error, OSError) as exc:
            raise CollectError("unreachable", target.where, f"connection lost: {_reason(exc)}") from None
        finally:
            if process is not None and process.exit_status is None and process.exit_signal is None:
                # Timed out, too much output or cancelled: kill the remote process and close
                # its channel, rather than leave it running.
                with contextlib.suppress(OSError, asyncssh.Error):
                    process.send_signal("KILL")
                process.close()
        if completed.exit_status is None and not completed.exit_signal:
            # The channel closed without an exit status: the connection went (another
            # collection's failure may have dropped the shared connection), not the probe.
            raise CollectError("unreachable", target.where, "connection lost before the probe finished")
        if completed.exit_status != 0:
            lines = stderr.decode(errors="replace").strip().splitlines()
            if completed.exit_signal:
                status = f"was killed by signal {completed.exit_signal[0]}"
            else:
                status = f"exited with status {completed.exit_status}"
            raise CollectError("command_failed", target.where, f"probe {status}: {lines[-1] if lines else 'no message'}")
        return stdout.decode(errors="replace")

    async def _trusted_hosts(self, where: str) -> asyncssh.SSHKnownHosts:
        """Both known_hosts files, parsed once and again only when one of them changes."""
        async with self._known_hosts_lock:
            stamp = await asyncio.to_thread(self._stamp)
            if stamp != self._known_hosts_stamp:
                existing = [str(path) for path, mark in zip(self._known_hosts_files, stamp) if mark]
                try:
                    self._known_hosts = await asyncio.to_thread(asyncssh.read_known_hosts, existing)
                except (OSError, ValueError) as exc:
                    raise CollectError("hostkey_unknown", where, f"known_hosts cannot be read: {exc}") from None
                self._known_hosts_stamp = stamp
            return self._known_hosts

    def _stamp(self) -> tuple:
        marks = []
        for path in self._known_hosts_files:
            try:
                info = path.stat()
                marks.append((info.st_mtime_ns, info.st_size, info.st_ino))
            except OSError:
                marks.append(None)
        return tuple(marks)

    async def _auth_options(self, target: SSHTarget) -> dict:
        if target.auth == "password":
            if target.secret is None:
                raise CollectError("auth_failed", target.where, "no password stored for password authentication")
            return {"password": target.secret, "client_keys": None, "agent_path": None}
        if target.auth == "key":
            keys = [await self._client_key(target)] if target.key_file else ()  # () = ~/.ssh/id_* defaults
            return {"client_keys": keys, "agent_path": None, "password": None}
        return {"password": None}  # agent: $SSH_AUTH_SOCK, then the ~/.ssh/id_* defaults, as ssh does

    async def _client_key(self, target: SSHTarget) -> asyncssh.SSHKey:
        """The key file, read and decrypted once (a passphrase's KDF is slow), in a thread."""
        cache_key = (target.key_file, target.secret)
        if cache_key not in self._client_keys:
            try:
                self._client_keys[cache_key] = await asyncio.to_thread(
                    asyncssh.read_private_key, target.key_file, target.secret
                )
            except OSError as exc:
                raise CollectError("auth_failed", target.where, f"key file {target.key_file}: {exc.strerror or exc}") from None
            except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
                raise CollectError("auth_failed", target.where, f"key file {target.key_file}: {exc}") from None
        return self._client_keys[cache_key]

    def _connect_error(self, target: SSHTarget, exc: Exception, client: _Client | None) -> CollectError:
        where = target.where
        if isinstance(exc, asyncssh.HostKeyNotVerifiable):
            if client is None or client.presented is None:
                return CollectError("hostkey_unknown", where, f"host key not verifiable: {_reason(exc)}")
            addr, key = client.presented
            trusted = self._known_hosts.match(target.host, addr, target.port)
            if trusted[0] or trusted[1]:
                return CollectError(
                    "hostkey_changed",
                    where,
                    f"host key CHANGED, now {describe_key(key)}; refusing to connect (if the change is expected, "
                    f"check it and run: fleettop trust {target.name})",
                )
            return CollectError(
                "hostkey_unknown",
                where,
                f"host key unknown ({describe_key(key)}); check it and run: fleettop trust {target.name}",
            )
        if isinstance(exc, asyncssh.PermissionDenied):
            return CollectError("auth_failed", where, f"authentication failed as {target.username} ({target.auth})")
        if isinstance(exc, TimeoutError):
            return CollectError("unreachable", where, f"connection timed out after {self._ssh.connect_timeout:g} s")
        if isinstance(exc, socket.gaierror):
            return CollectError("unreachable", where, f"cannot resolve {target.host}: {exc.strerror}")
        if isinstance(exc, ConnectionRefusedError):
            return CollectError("unreachable", where, "connection refused")
        if isinstance(exc, (OSError, asyncssh.Error)):
            return CollectError("unreachable", where, f"cannot connect: {_reason(exc)}")
        return CollectError("unreachable", where, f"cannot connect: {type(exc).__name__}: {exc}")


async def _read_capped(stream: asyncssh.SSHReader, limit: int, where: str | None) -> bytes:
    """Everything up to EOF, at most `limit` bytes. Past the limit: CollectError('unparsable')
    when `where` is given (stdout), else the rest is read and dropped (stderr)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        data = await stream.read(READ_CHUNK)
        if not data:
            return b"".join(chunks)
        if size + len(data) > limit:
            if where is not None:
                raise CollectError("unparsable", where, f"probe output exceeds {limit // 1024} KiB: refused")
            data = data[: max(0, limit - size)]
        size += len(data)
        if data:
            chunks.append(data)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.Error):
        return exc.reason
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
