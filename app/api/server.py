"""The HTTP API served by uvicorn inside the event loop of the worker or the dashboard.

uvicorn is made a guest here (its three habits, checked in uvicorn 0.55's source):
- its Server.serve() replaces the SIGINT/SIGTERM handlers with its own (capture_signals):
  a no-op here, the host's handlers stay (`--headless` stops on SIGTERM, the dashboard on q);
- Config.load() runs logging.config.dictConfig unless log_config=None: None here, its
  loggers (uvicorn.error) go through fleettop's logging like any other;
- a port it cannot bind ends in sys.exit(3) inside its task: here the socket is bound
  before anything starts (bind_listener), so a port in use is a one-line error and exit 2,
  and serve() is handed that socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn

from fleettop.api.app import build_app
from fleettop.api.rows import Rows
from fleettop.config import ApiConfig, Listen
from fleettop.errors import UsageError
from fleettop.service import FleetService

log = logging.getLogger("fleettop.api")

STOP_TIMEOUT_S = 5  # requests in flight get this long at shutdown, then are cut
MAX_CONNECTIONS = 200  # past this many at once, a new request is answered 503


class _Guest(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the host process owns its signals


def bind_listener(listen: Listen, settings: ApiConfig, where: str) -> socket.socket:
    """The listening socket for `listen`, or a UsageError (exit 2) naming `where` it was set:
    the address is in use or cannot be had, or is not loopback and no token is set."""
    try:
        infos = socket.getaddrinfo(listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"{where}: cannot resolve {listen.host!r}: {exc.strerror}") from None
    loopback = all(ipaddress.ip_address(str(info[4][0]).partition("%")[0]).is_loopback for info in infos)
    if not loopback and not settings.named_tokens():
        raise UsageError(
            f"{where}: {listen} is not a loopback address: set api.token (or FLEETTOP_API__TOKEN) before serving it"
        )
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait out TIME_WAIT
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        reason = (
            "address already in use (another process listens there)" if exc.errno == errno.EADDRINUSE else exc.strerror
        )
        raise UsageError(f"{where}: cannot listen on {listen}: {reason}") from None
    return sock


@contextlib.asynccontextmanager
async def serving(service: FleetService, settings: ApiConfig, sock: socket.socket) -> AsyncIterator[str]:
    """The API served on `sock` for the duration of the context; yields its URL."""
    rows = Rows(service)
    config = uvicorn.Config(
        build_app(service, rows, settings),
        log_config=None,
        access_log=False,
        lifespan="off",
        limit_concurrency=MAX_CONNECTIONS,
        timeout_graceful_shutdown=STOP_TIMEOUT_S,
        server_header=False,
    )
    server = _Guest(config)
    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    await rows.start()
    task = asyncio.create_task(_serve(server, sock), name="fleettop-api")
    try:
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            raise UsageError(f"the HTTP API did not start on {url} (see the log)")
        log.info("HTTP API on %s (metrics at %s/metrics)", url, url)
        yield url
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT_S + 1)
        except TimeoutError:
            server.force_exit = True
            await task
        await rows.stop()
        sock.close()


async def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:  # uvicorn's way to fail at start: never the host process's exit
        log.error("the HTTP API stopped (uvicorn exit code %s)", exc.code)
