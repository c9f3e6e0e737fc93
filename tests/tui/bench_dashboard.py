"""How the server list copes with a big fleet: `python tests/tui/bench_dashboard.py [N]`.

Builds N servers of fixed figures, then measures the CPU time (headless,
including the repaint that follows; Pilot's own waits sleep, so they cost little): the first load, one changed row, every row changed
at once, a clock tick (age and next-run columns of every row), one keystroke in the filter
box (narrowing the list, and backspace widening it again), and the CPU the
idle dashboard burns with its 1 s clock and 1.5 s count refresh running.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixed_fleet import NOW, FixedFleet  # noqa: E402

from fleettop.tui.app import FleetApp  # noqa: E402


def big_fleet(count: int) -> FixedFleet:
    fleet = FixedFleet()
    template = fleet.rows
    rows = []
    for index in range(count):
        row = template[index % len(template)]
        server = row.server.model_copy(update={"id": index + 1, "name": f"{row.server.name}-{index:04d}"})
        rows.append(row.model_copy(update={"server": server}))
    fleet.rows = rows
    return fleet


def changed(row, step: int):
    latest = row.latest
    if latest is None:
        return row
    moved = latest.model_copy(
        update={"cpu_percent": ((latest.cpu_percent or 0) + step) % 100, "load1": latest.load1 + 0.01 * step}
    )
    return row.model_copy(update={"latest": moved})


async def main(count: int) -> None:
    fleet = big_fleet(count)
    rows, fleet.rows = fleet.rows, []
    app = FleetApp(fleet, clock=lambda: NOW, live=False)
    async with app.run_test(size=(160, 50)) as pilot:
        table = app.dashboard.table
        await pilot.pause()
        fleet.rows = rows

        started = time.process_time()
        app.dashboard.show_rows(await fleet.list_servers())
        await pilot.pause()
        print(f"{count} rows, first load: {1000 * (time.process_time() - started):.1f} ms")

        started = time.process_time()
        app.dashboard.show_rows(await fleet.list_servers())
        await pilot.pause()
        print(f"full reload, nothing changed: {1000 * (time.process_time() - started):.1f} ms")

        single = []
        for step in range(50):
            row = changed(fleet.rows[step * 7 % count], step + 1)
            started = time.process_time()
            app.dashboard.show_row(row)
            await pilot.pause()
            single.append(time.process_time() - started)
        print(
            f"one row changed, repainted: median {1000 * statistics.median(single):.1f} ms, max {1000 * max(single):.1f} ms"
        )

        every = []
        for step in range(3, 10):
            rows = [changed(row, step) for row in fleet.rows]
            started = time.process_time()
            app.dashboard.show_rows(rows)
            await pilot.pause()
            every.append(time.process_time() - started)
        print(
            f"all {count} rows changed at once: median {1000 * statistics.median(every):.1f} ms, "
            f"min {1000 * min(every):.1f} ms (of {len(every)})"
        )

        started = time.process_time()
        table.tick()
        await pilot.pause()
        print(f"clock tick over {count} rows: {1000 * (time.process_time() - started):.1f} ms")

        table.move_cursor(row=count // 2)
        await pilot.pause()
        scrolls = []
        for _ in range(20):
            started = time.process_time()
            await pilot.press("down")
            scrolls.append(time.process_time() - started)
        print(f"cursor down in the middle: median {1000 * statistics.median(scrolls):.1f} ms")

        # The filter box ("/"), then one keystroke at a time: "d" keeps the db-* servers (a
        # third of the rows), backspace brings every row back; each timed with its repaint.
        await pilot.press("slash")
        await pilot.pause()
        narrow, widen = [], []
        for _ in range(10):
            started = time.process_time()
            await pilot.press("d")
            narrow.append(time.process_time() - started)
            shown = table.row_count
            started = time.process_time()
            await pilot.press("backspace")
            widen.append(time.process_time() - started)
        if shown >= count or table.row_count != count:
            raise RuntimeError(f"the filter did not filter: {shown} then {table.row_count} of {count} rows")
        print(
            f"filter keystroke, {count} rows to {shown}: median {1000 * statistics.median(narrow):.1f} ms, "
            f"max {1000 * max(narrow):.1f} ms"
        )
        print(
            f"filter keystroke (backspace), {shown} rows back to {count}: median "
            f"{1000 * statistics.median(widen):.1f} ms, max {1000 * max(widen):.1f} ms"
        )

    live = FleetApp(fleet, clock=lambda: NOW, live=True)
    async with live.run_test(size=(160, 50)) as pilot:
        await pilot.pause(1)
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(10)
        used = time.process_time() - cpu
        print(f"idle, live timers on, {count} rows: {100 * used / (time.perf_counter() - wall):.1f} % of one core")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
