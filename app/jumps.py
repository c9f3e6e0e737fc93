"""Jump host specs, as ProxyJump and a server's `jump:` write them: pure parsing, no I/O.

A spec is one hop or a comma-separated chain, each `[user@]host[:port]` (an IPv6 address in
brackets: `[::1]:2222`), the first hop the one reached directly. A spec of one bare word may
also be the name of another server of the fleet: the caller decides (`JumpHop.bare`).
"""

from __future__ import annotations

from dataclasses import dataclass

# ProxyJump's own word for "no jump host": it overrides one a matching Host block sets.
NO_JUMP = "none"


@dataclass(frozen=True)
class JumpHop:
    host: str
    port: int | None = None  # None: the port the ssh config gives that host, else 22
    username: str | None = None  # None: the user the ssh config gives that host, else ssh.username

    @property
    def bare(self) -> bool:
        """Only a word: maybe a server's name rather than an address."""
        return self.port is None and self.username is None

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        return f"{user}{host}{port}"


def parse_jump(spec: str) -> tuple[JumpHop, ...]:
    """The hops of a spec, first reached first; `none` gives no hop. ValueError naming the
    hop that is wrong and why."""
    spec = spec.strip()
    if spec.lower() == NO_JUMP:
        return ()
    if not spec:
        raise ValueError("is empty (write none for no jump host)")
    return tuple(_hop(part.strip(), index) for index, part in enumerate(spec.split(",")))


def format_jump(hops: tuple[JumpHop, ...]) -> str:
    return ",".join(str(hop) for hop in hops) if hops else NO_JUMP


def _hop(text: str, index: int) -> JumpHop:
    where = f"hop {index + 1} {text!r}" if text else f"hop {index + 1}"
    if not text:
        raise ValueError(f"{where} is empty")
    if any(char.isspace() for char in text):
        raise ValueError(f"{where} has a space in it")
    text = text.removeprefix("ssh://")
    username: str | None = None
    if "@" in text:
        username, _, text = text.rpartition("@")
        if not username:
            raise ValueError(f"{where} has an empty user name before '@'")
    port_text: str | None = None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"{where} has '[' without a closing ']'")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{where} has {rest!r} after ']' (expected :port)")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host = text  # a bare IPv6 address has several ':' and no port
    if not host:
        raise ValueError(f"{where} has no host")
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"{where} has port {port_text!r}: must be a number from 1 to 65535")
        port = int(port_text)
    return JumpHop(host=host, port=port, username=username)
