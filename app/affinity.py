"""Which worker collects which server: rendezvous (highest random weight) hashing.

Every live scheduling worker is a member of the ring (fleettop.cache keeps it in Redis, by
heartbeat). A server belongs to the member whose sha1("<worker id>/<server id>") is the
highest: every process that sees the same members agrees without talking to the others, and
when a member joins or leaves only the servers it gains or held move (about 1/N of them).
The queue's dequeue script (fleettop.queue.worker) computes the same in Lua, so a worker
only takes the jobs of its own servers; tests check that both agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence


def weight(member: str, server_id: int) -> str:
    """The member's weight for a server: 40 hex digits, compared as strings (as Lua does)."""
    return hashlib.sha1(f"{member}/{server_id}".encode()).hexdigest()


def owner(server_id: int, ring: Sequence[str]) -> str | None:
    """The member that collects this server; None with no member."""
    return max(ring, key=lambda member: weight(member, server_id), default=None)


def owned_by(member: str, server_ids: Iterable[int], ring: Sequence[str]) -> set[int]:
    """The servers among `server_ids` that `member` collects (all of them when alone)."""
    if list(ring) == [member]:
        return set(server_ids)
    return {server_id for server_id in server_ids if owner(server_id, ring) == member}
