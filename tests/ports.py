"""Free loopback ports for the servers the tests start (sshd, redis-server, the HTTP API)."""

from __future__ import annotations

import contextlib
import socket


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports. Each socket stays bound until all are picked: ports picked
    one at a time may repeat (the kernel hands a closed one out again), and two servers on
    one port are one server."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def free_port() -> int:
    return free_ports(1)[0]
