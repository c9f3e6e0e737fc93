"""The one exception a collection raises, classified for retries and for the dashboard."""

from __future__ import annotations

from typing import Literal

from fleettop.errors import FleettopError
from fleettop.text import clean

CollectErrorKind = Literal[
    "unreachable", "auth_failed", "hostkey_unknown", "hostkey_changed", "timeout", "command_failed", "unparsable"
]

DETAIL_MAX = 300

# Failures no retry seconds later can fix: a person must act first (fix the key, password or
# user; check the host key and run `fleettop trust`). Not "unreachable": connection refused
# is also a host rebooting or sshd restarting, and a name that does not resolve can be a DNS
# hiccup; nor "timeout", "command_failed" or "unparsable": a busy host or a hung mount.
PERMANENT_KINDS: frozenset[CollectErrorKind] = frozenset({"auth_failed", "hostkey_unknown", "hostkey_changed"})


def host_port(host: str, port: int) -> str:
    """A server's address as messages show it: host:port, the port always there, brackets
    only around an IPv6 address (whose colons would run into the port's)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class CollectError(FleettopError):
    """A collection that failed; str() is one line naming the host, `.kind` says why."""

    def __init__(self, kind: CollectErrorKind, where: str, detail: str):
        # A hostile host's stderr or output must not carry terminal escapes into the error
        # stored, logged and printed by the CLI.
        detail = " ".join(clean(detail).split()) or kind.replace("_", " ")
        if len(detail) > DETAIL_MAX:
            detail = detail[: DETAIL_MAX - 1] + "…"
        super().__init__(clean(f"{where}: {detail}"))  # `where` holds a name and host read from the database
        self.kind = kind

    @property
    def permanent(self) -> bool:
        """Retrying cannot help (PERMANENT_KINDS)."""
        return self.kind in PERMANENT_KINDS
