"""`fleettop --demo N`: a year of history for the simulated hosts, written through the rollups,
so the charts and the disk forecasts show at once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from queue_helpers import loaded, wait_until

from fleettop.rollup import DAY_S
from fleettop.wiring import open_service


async def test_the_demo_starts_with_a_year_of_charts_and_forecasts(short_dir: Path):
    async with open_service(loaded({"data_dir": str(short_dir)}), worker=False, demo=12) as service:
        names = sorted(server.name for server in await service.repo.list_servers())
        assert len(names) == 12

        async def filled(name: str) -> bool:
            (server,) = await service.resolve([name])
            now = datetime.now(UTC)
            cpu = await service.repo.history_series(server.id, "cpu", now - timedelta(days=365), now)
            return bool(cpu.points) and cpu.points[0].at <= time.time() - 360 * DAY_S

        await wait_until(lambda: filled(names[-1]), 60)  # filled server after server: all done
        cpu = (await service.server_detail(names[-1], 365 * DAY_S, 200)).history.series[0]
        assert cpu.tier == "1h" and 150 <= len(cpu.points) <= 200
        assert all(0 <= p.min <= p.avg <= p.max <= 100 for p in cpu.points)
        for span, tier in ((DAY_S, "5m"), (7 * DAY_S, "5m"), (30 * DAY_S, "1h")):
            detail = await service.server_detail(names[0], span, 200)
            assert {s.tier for s in detail.history.series} == {tier}
            assert all(s.points for s in detail.history.series), span
        forecasts = await service.disk_forecasts([server.id for server in await service.repo.list_servers()])
        # sim-0011's disks fill up (a few points a day): forecast; the others stay, and are not.
        (filling,) = await service.resolve(["sim-0011"])
        assert set(forecasts) == {filling.id}
        assert all(0 <= seconds < 100 * DAY_S for seconds in forecasts[filling.id].values()), forecasts
        # The dashboard marks it (alerts.disk_full_within, 7 days by default), and only it.
        rows = await service.list_servers()
        assert {row.server.name for row in rows if row.disk_full} == {"sim-0011"}
