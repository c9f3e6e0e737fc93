"""Helpers of the alert tests: a webhook receiver on loopback, the config, one collection."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from queue_helpers import loaded

from fleettop.service import FleetService
from fleettop.wiring import open_service


class Receiver:
    """A webhook on 127.0.0.1: keeps every JSON body POSTed to it; `down` refuses with 503."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.down = False
        self.refused = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"json://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/alerts"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        body = await reader.readexactly(length)
        if self.down:
            self.refused += 1
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        else:
            self.messages.append(json.loads(body))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    def lines(self) -> list[str]:
        return [line for message in self.messages for line in message["message"].splitlines()]

    def titled(self, word: str) -> list[str]:
        return [line for line in self.lines() if line.startswith(f"[{word}]")]


def alert_config(make_config: Any, database_url: str | None, receiver: Receiver, **alerts: Any) -> dict[str, Any]:
    return make_config(
        servers=["sim-0001"],
        database={"url": database_url},
        alerts={"for": 2, "recovery_margin": 5, "down_after": 1, "repeat": 0, **alerts},
        notify={"urls": [receiver.url], "group_wait": 0},
        defaults={"thresholds": {"cpu": 100, "ram": 95, "disk": 100}},
    )


@contextlib.asynccontextmanager
async def manual_worker(data: dict[str, Any]) -> AsyncIterator[FleetService]:
    """A service whose worker runs the manual queue only (each sample is a collection the test
    asked for) and delivers notifications."""
    async with open_service(loaded(data), worker=False) as service:
        await service.start_worker(schedule=False, notify=True)
        yield service


async def collect(service: FleetService, name: str = "sim-0001") -> None:
    servers = await service.resolve([name])
    await service.collect_servers(servers, everything=False)
    await service.wait_collected(servers, timeout=60)
