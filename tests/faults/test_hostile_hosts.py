"""Hostile hosts (fleettop.sim's misbehave()): every answer is bounded in size and time,
refused with its own kind of error, and nothing a host sends reaches a terminal as
an escape sequence or as markup."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from fault_helpers import first_round_ok
from queue_helpers import run_fleettop, service_for, wait_until

from fleettop.config import Settings
from fleettop.domain import Server
from fleettop.probe import CollectError, Prober
from fleettop.probe.parse import MAX_DISKS, NAME_MAX
from fleettop.probe.sim import HOSTILE
from fleettop.probe.ssh import MAX_OUTPUT_BYTES

ESC = "\x1b"

# behaviour -> the error kind it must end in (None: collected, with names made inert)
EXPECTED = {
    "huge": "unparsable",
    "endless": "unparsable",
    "garbage": "unparsable",
    "escapes": None,
    "stderr-escapes": "command_failed",
    "drip": "timeout",
    "many-disks": None,
}


def test_every_hostile_behaviour_is_covered():
    assert set(EXPECTED) == set(HOSTILE)


async def test_hostile_answers_are_bounded_and_refused(fleet, short_dir: Path):
    name, port = fleet.hosts[0]
    settings = Settings.model_validate(
        {
            "data_dir": str(short_dir / "data"),
            "ssh": {"known_hosts": str(fleet.known_hosts_path), "connect_timeout": 3, "command_timeout": 2},
        }
    )
    prober = Prober(settings)
    server = Server(
        id=1,
        name=name,
        host=fleet.address,
        port=port,
        username=fleet.username,
        auth="key",
        key_file=str(fleet.client_key_path),
        interval=60,
    )
    timings = {}
    try:
        for how, kind in EXPECTED.items():
            fleet.misbehave(name, how)
            started = time.monotonic()
            if how == "many-disks":  # 1,200 disks at 300-character paths: the fullest 256, names cut at 256
                disks = (await prober.collect(server, None)).metrics.disks
                assert len(disks) == MAX_DISKS and {len(disk.mount) for disk in disks} == {NAME_MAX}
                assert min(disk.used_bytes for disk in disks) == (999 - MAX_DISKS + 1) * 1024
            elif kind is None:
                result = await prober.collect(server, None)
                names = [text for disk in result.metrics.disks for text in (disk.mount, disk.device, disk.fstype)]
                assert any("[bold red]boom[/]" in text for text in names)  # kept, literally
                assert not any(ch < " " or "\x7f" <= ch <= "\x9f" for text in names for ch in text), names
            else:
                with pytest.raises(CollectError) as caught:
                    await prober.collect(server, None)
                assert caught.value.kind == kind, (how, str(caught.value))
                message = str(caught.value)
                assert ESC not in message and "\n" not in message and "\x07" not in message
                assert len(message) < 400
            elapsed = time.monotonic() - started
            # An endless answer is cut at the cap ('unparsable', not 'timeout'); a drip ends at
            # the timeout (2 s). Bounds with room for a loaded machine.
            assert elapsed < 6, (how, elapsed)
            timings[how] = round(elapsed, 2)
        fleet.misbehave(name, None)
        await prober.collect(server, None)  # the host behaves again: collected again
    finally:
        await prober.close()
    assert MAX_OUTPUT_BYTES <= 1024 * 1024
    print(f"hostile answers, seconds to the verdict: {timings}")


async def test_cli_output_of_hostile_hosts_is_inert(make_config, short_dir: Path, fleet):
    """`collect --wait` (text and --json) of a host whose stderr and mount names carry
    escapes and markup: no ESC or BEL byte reaches stdout; JSON escapes nothing needed."""
    names = ["sim-0001", "sim-0002"]
    make_config(servers=names, worker={"retries": 1, "concurrency": 2})
    fleet.misbehave("sim-0001", "stderr-escapes")
    fleet.misbehave("sim-0002", "escapes")
    config = short_dir / "config.yaml"
    code, out, err = await run_fleettop(config, "collect", *names, "--wait")
    assert code == 1, (out, err)  # one failed
    assert ESC not in out + err and "\x07" not in out + err
    assert "sim-0001  failed" in out and "[bold red]boom[/]" in out
    code, out, err = await run_fleettop(config, "collect", *names, "--wait", "--json")
    assert ESC not in out + err and "\x07" not in out + err
    results = {result["server"]: result for result in json.loads(out)}
    assert results["sim-0001"]["status"] == "failed"
    mounts = [disk["mount"] for disk in results["sim-0002"]["disks"]]
    assert any("[bold red]boom[/]" in mount for mount in mounts), mounts
    # `servers test` prints every disk with its device and fstype: the fstype's OSC title
    # change, OSC 52 clipboard write and CSI colour reach the terminal as nothing but "?"
    code, out, err = await run_fleettop(config, "servers", "test", "sim-0002")
    assert code == 0, (out, err)
    assert ESC not in out + err and "\x07" not in out + err, out
    assert "PWNED" not in out and "/dev/vdz?[5m ?" in out, out


async def test_the_dashboard_shows_hostile_names_and_errors_inert(make_config, short_dir: Path, fleet):
    """Mount names and an error carrying escapes and markup, on the dashboard and the
    detail screen: the markup is shown as text, no escape reaches the screen."""
    from fleettop.tui.app import FleetApp
    from fleettop.tui.screens.detail import DetailScreen

    names = ["sim-0001", "sim-0002"]
    data = make_config(servers=names, interval=3600, worker={"retries": 1})
    async with service_for(data, worker=True) as service:
        servers = await service.resolve(names)

        await wait_until(lambda: first_round_ok(service, servers), 20)
        fleet.misbehave("sim-0001", "escapes")
        fleet.misbehave("sim-0002", "stderr-escapes")
        await service.collect_now(names)
        await service.wait_collected(servers, timeout=30)
        app = FleetApp(service, config_path=short_dir / "config.yaml")
        # Tall enough for the detail screen's mounts table below its charts.
        async with app.run_test(size=(200, 120)) as pilot:
            await wait_until(lambda: len(app.dashboard.table.rows_by_id) == 2, 10)
            await pilot.pause(0.5)
            table = app.dashboard.table
            rows = {row.server.name: row for row in table.rows_by_id.values()}
            assert "[bold red]boom[/]" in rows["sim-0002"].error
            screens = []
            for name in names:
                app.push_screen(DetailScreen(name))
                await wait_until(lambda: isinstance(app.screen, DetailScreen), 5)
                await pilot.pause(1.0)
                screens.append(app.export_screenshot())
                app.pop_screen()
                await pilot.pause(0.2)
    import html
    import re

    texts = [html.unescape(" ".join(re.findall(r">([^<]*)</text>", svg))).replace("\xa0", " ") for svg in screens]
    detail_ok, detail_failed = texts
    assert "/mnt/?]0;pwned?" in detail_ok and "/dev/vdz?[5m" in detail_ok  # escapes made inert, column cut
    assert "[bold red]boom" in detail_failed  # the error's markup, as text
    assert ESC not in "".join(screens) and "\x07" not in "".join(screens)


async def test_a_failing_probe_keeps_the_connection_for_a_concurrent_collection(fleet, short_dir: Path):
    """A probe that fails on a sound connection (bad exit, nonsense answer) must not cut
    a concurrent collection of the same server short: the connection stays."""
    name, port = fleet.hosts[0]
    settings = Settings.model_validate(
        {"data_dir": str(short_dir / "data"), "ssh": {"known_hosts": str(fleet.known_hosts_path), "command_timeout": 5}}
    )
    prober = Prober(settings)
    server = Server(
        id=1,
        name=name,
        host=fleet.address,
        port=port,
        username=fleet.username,
        auth="key",
        key_file=str(fleet.client_key_path),
        interval=60,
    )
    try:
        first = await prober.collect(server, None)
        fleet.slow(name, 1.0)
        slow = asyncio.create_task(prober.collect(server, first.counters))
        await asyncio.sleep(0.3)  # the slow one is on the connection
        fleet.slow(name, 0)
        fleet.misbehave(name, "garbage")
        with pytest.raises(CollectError):
            await prober.collect(server, first.counters)
        fleet.misbehave(name, None)
        await slow  # not cut short
        await prober.collect(server, first.counters)
        assert fleet.host(name).connections_made == 1
    finally:
        await prober.close()
