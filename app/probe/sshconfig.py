"""What the user's OpenSSH client config (`ssh.config`) says for one host, read by asyncssh's own
parser, so that Host and Match blocks, Include, first-value-wins and %-tokens are OpenSSH's.

Used to say what a server resolves to (`fleettop servers test`), to find its ProxyJump (each
bastion gets one kept connection, shared), and to let ConnectTimeout, ServerAliveInterval and
UserKnownHostsFile apply. Everything else in the file applies at connect time, as asyncssh
is given the same files. Parsing is blocking: call `lookup` in a thread.
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asyncssh.config import SSHClientConfig

# What a lookup is cached on: the files' (mtime, size, inode); a change anywhere re-reads them.
_Stamp = tuple[tuple[int, int, int] | None, ...]


class SSHConfigProblem(Exception):
    """The ssh config cannot be read or parsed; the message is one line, naming the file."""


@dataclass(frozen=True)
class HostSettings:
    """One alias's settings in the ssh config; None (or ()) where it says nothing."""

    address: str | None = None  # HostName
    port: int | None = None
    username: str | None = None
    identity_files: tuple[str, ...] = ()
    proxy_jump: str | None = None  # as written: a spec (jumps.parse_jump), or "none"
    proxy_command: bool = False
    connect_timeout: float | None = None
    keepalive_interval: float | None = None
    known_hosts_files: tuple[Path, ...] = ()


NOTHING = HostSettings()


class SSHConfigFiles:
    def __init__(self, paths: Sequence[Path]):
        self.paths = tuple(paths)
        self._stamp: _Stamp | None = None
        self._cache: dict[tuple[str, str | None, int | None], HostSettings] = {}

    def lookup(self, alias: str, username: str | None = None, port: int | None = None) -> HostSettings:
        """The settings for `alias`, as ssh would see them when told `-l username -p port`
        (each None: not told). Blocking. Raises SSHConfigProblem."""
        if not self.paths:
            return NOTHING
        stamp = self._stamps()
        if stamp != self._stamp:
            self._cache.clear()
            self._stamp = stamp
        key = (alias, username, port)
        if key not in self._cache:
            self._cache[key] = self._read(alias, username, port)
        return self._cache[key]

    def _stamps(self) -> _Stamp:
        marks: list[tuple[int, int, int] | None] = []
        for path in self.paths:
            try:
                info = path.stat()
                marks.append((info.st_mtime_ns, info.st_size, info.st_ino))
            except OSError:
                marks.append(None)
        return tuple(marks)

    def _read(self, alias: str, username: str | None, port: int | None) -> HostSettings:
        # A missing file is no config, as for ssh (~/.ssh/config need not exist).
        readable = [path for path in self.paths if path.exists()]
        try:
            config = SSHClientConfig.load(
                None,
                readable,
                False,
                False,
                False,
                getpass.getuser(),
                () if username is None else username,
                alias,
                () if port is None else port,
            )
        except OSError as exc:
            raise SSHConfigProblem(
                f"ssh config {exc.filename or readable[0]}: cannot be read: {exc.strerror or exc}"
            ) from None
        except Exception as exc:  # asyncssh's ConfigParseError (and ValueError of a bad value) name file and line
            raise SSHConfigProblem(f"ssh config: {exc}") from None
        config_port = config.get("Port")
        identity = config.get("IdentityFile") or ()
        known_hosts = config.get("UserKnownHostsFile") or ()
        timeout = config.get("ConnectTimeout")
        keepalive = config.get("ServerAliveInterval")
        jump = config.get("ProxyJump")
        return HostSettings(
            address=_str_or_none(config.get("Hostname")),
            port=None if port is not None or config_port is None else int(str(config_port)),
            username=None if username is not None else _str_or_none(config.get("User")),
            identity_files=tuple(str(path) for path in identity),  # type: ignore[attr-defined]
            proxy_jump=_str_or_none(jump),
            proxy_command=config.get("ProxyCommand") is not None,
            connect_timeout=None if timeout is None else float(str(timeout)),
            keepalive_interval=None if keepalive is None else float(str(keepalive)),
            known_hosts_files=tuple(Path(str(path)).expanduser() for path in known_hosts),  # type: ignore[attr-defined]
        )


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
