"""The servers as the dashboard sees them, held in memory for the API's readers.

GET /api/v1/servers and /metrics read this, not the database: a scrape every few
seconds of 1,000 servers must cost neither a SQL query nor 1,000 samples parsed.
As the dashboard does, the rows follow the service's events: a server that collected
(or failed to) is read again, alone, within FLUSH_EVERY_S; a change of the server
list, or a broken event stream, reloads them all. Whatever an event stream may have
missed is caught by a full reload every FULL_RELOAD_EVERY_S.

While the rows are not known (before the first read, or since the event stream
broke: Redis away) a read loads them through the service, and its error -- Redis
or the database down -- is the reader's (a 503).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone

from fleettop.service import FleetService
from fleettop.tasks import cancel_and_wait
from fleettop.views import ServerView

log = logging.getLogger("fleettop.api")

FLUSH_EVERY_S = 0.5
FULL_RELOAD_EVERY_S = 300.0
BULK_RELOAD = 200  # past this many changed servers one list_servers() beats reading each


class Rows:
    def __init__(self, service: FleetService):
        self.service = service
        self._rows: dict[int, ServerView] | None = None  # None: not known, load them all
        self._loaded_at = 0.0
        self._changed: set[int] = set()
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._json: dict[int, tuple[ServerView, bytes]] = {}

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._follow_events(), name="fleettop-api-events"),
            asyncio.create_task(self._refresh(), name="fleettop-api-rows"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)

    async def current(self) -> list[ServerView]:
        """Every server's row as of now (stale by the clock where its samples are old)."""
        rows = self._rows
        if rows is None:
            async with self._lock:
                rows = self._rows if self._rows is not None else await self._reload()
        now = datetime.now(timezone.utc)
        current = []
        for server_id, row in rows.items():
            aged = row.at(now)
            if aged is not row:  # kept: the same row object until it changes again (formats are cached by it)
                rows[server_id] = aged
            current.append(aged)
        return current

    def json(self, rows: list[ServerView]) -> bytes:
        """GET /api/v1/servers' body: each row's JSON made once per row object."""
        made = self._json
        self._json = {}
        for row in rows:
            entry = made.get(row.server.id)
            if entry is None or entry[0] is not row:
                entry = (row, row.model_dump_json().encode())
            self._json[row.server.id] = entry
        return b"[" + b",".join(encoded for _, encoded in self._json.values()) + b"]"

    async def _reload(self) -> dict[int, ServerView]:
        self._changed.clear()
        rows = {row.server.id: row for row in await self.service.list_servers()}
        self._rows, self._loaded_at = rows, time.monotonic()
        return rows

    async def _follow_events(self) -> None:
        while True:
            try:
                async for event in self.service.events():
                    if event.kind in ("sample", "run") and event.server_id is not None:
                        self._changed.add(event.server_id)
                    elif event.kind in ("servers", "interrupted"):
                        self._rows = None  # interrupted: what Redis announces meanwhile goes unheard
            except Exception as exc:  # the stream itself failed: unheard changes, so a full reload
                self._rows = None
                log.warning("HTTP API: event stream lost (%s); listening again", exc)
                await asyncio.sleep(1)

    async def _refresh(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            try:
                async with self._lock:
                    await self._apply_changes()
                failing = False
            except Exception as exc:  # Redis or the database away: readers load (and answer 503) until it is back
                self._rows = None
                if not failing:
                    log.warning("cannot refresh the servers for the HTTP API: %s", exc)
                failing = True

    async def _apply_changes(self) -> None:
        rows = self._rows
        if rows is None:
            return  # loaded by the next reader: no reader, no work
        if len(self._changed) > BULK_RELOAD or time.monotonic() - self._loaded_at > FULL_RELOAD_EVERY_S:
            await self._reload()
            return
        changed, self._changed = self._changed, set()
        for server_id, row in (await self.service.server_rows(changed)).items():
            if row is None:
                rows.pop(server_id, None)
            else:
                rows[server_id] = row
