"""Two first judgements of one server at once on PostgreSQL (two workers, or a worker and a
duplicate delivery): the second waits for the first's lock and then sees the alert it opened,
instead of opening it again (uq_alerts_open) and failing its whole batch."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fleettop.config import ServerConfig, Settings
from fleettop.domain import DiskUsage, Metrics, Thresholds
from fleettop.store import alerts
from fleettop.store.alerts import AlertSetup, Observation
from fleettop.store.db import open_database
from fleettop.store.repo import Repository


async def test_a_concurrent_first_judgement_sees_the_alert_the_other_opened(tmp_path, pg_database_url):
    settings = Settings.model_validate(
        {"data_dir": str(tmp_path / "data"), "database": {"url": pg_database_url}, "alerts": {"for": 2, "repeat": 0}}
    )
    database = await open_database(settings)
    try:
        setup = AlertSetup.of(settings)
        repo = Repository(database, settings.defaults, settings.retention, setup)
        server = await repo.add_server(ServerConfig(name="web-1", host="10.0.0.1"))
        now = datetime.now(UTC)

        def observation(at: datetime) -> Observation:
            disk = DiskUsage(mount="/", used_bytes=99, total_bytes=100, percent=99)
            metrics = Metrics(
                collected_at=at, cpu_percent=5, mem_percent=10, load1=0, load5=0, load15=0, procs=1, uptime_s=1,
                disks=[disk],
            )  # fmt: skip
            return Observation(server.id, server.name, at, Thresholds(), metrics, False)

        first = await database.engine.connect()
        await first.begin()
        await alerts.judge(first, "postgresql", setup, [observation(now)])

        async def second() -> None:
            async with database.engine.begin() as conn:
                await alerts.judge(conn, "postgresql", setup, [observation(now + timedelta(seconds=1))])

        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.5)  # the second blocks on the first's lock
        assert not waiting.done()
        await first.commit()
        await first.close()
        await waiting  # raised IntegrityError (uq_alerts_open) before the fix
        assert [(a.rule, a.label) for a in await repo.alerts()] == [("disk", "/")]
    finally:
        await database.close()
