"""Alerts end to end: simulated hosts crossing thresholds, collected by real workers (real
Redis, SQLite and PostgreSQL, SSH to asyncssh-simulated hosts), notified through apprise's
json:// to a real HTTP receiver on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

from alert_helpers import Receiver, alert_config, collect, manual_worker
from queue_helpers import service_for, wait_until

from fleettop.alerting import AlertState
from fleettop.probe.sim import SimFleet
from fleettop.timing import scaled


async def test_ram_flapping_at_its_threshold_sends_one_firing_and_one_resolved(
    make_config: Any, database_url: str | None, fleet: SimFleet, receiver: Receiver
) -> None:
    data = alert_config(make_config, database_url, receiver)
    machine = fleet.host("sim-0001").machine
    # 20 samples around 95 %: never 2 under it in a row... once 2 over it in a row (fires), never
    # 5 points under it (stays firing); then 80 %: resolved.
    pattern = [97.0, 92.0, 97.5, 97.0, 92.0, 97.5, 92.0, 97.0, 92.5, 97.5] * 2
    async with manual_worker(data) as service:
        for percent in pattern:
            machine.mem_fraction = percent / 100
            await collect(service)
        open_alerts = await service.alerts()
        assert [(a.server, a.rule, a.state) for a in open_alerts] == [("sim-0001", "ram", AlertState.FIRING)]
        assert open_alerts[0].peak is not None and open_alerts[0].peak > 96
        machine.mem_fraction = 0.80
        await collect(service)
        await wait_until(lambda: receiver.titled("RESOLVED"), timeout=15)
        await asyncio.sleep(2)  # nothing more comes
        assert len(receiver.titled("FIRING")) == 1 and len(receiver.titled("RESOLVED")) == 1
        assert receiver.titled("FIRING")[0].startswith("[FIRING] sim-0001 ram: ")
        assert [m["type"] for m in receiver.messages] == ["failure", "success"]
        assert await service.alerts() == []
        (resolved,) = await service.alerts(everything=True)
        assert resolved.state is AlertState.RESOLVED and resolved.resolved_at is not None


async def test_two_workers_send_each_event_once(
    make_config: Any, database_url: str | None, fleet: SimFleet, receiver: Receiver
) -> None:
    data = alert_config(make_config, database_url, receiver, **{"for": 1})
    data["servers"] = [cfg for cfg in make_config()["servers"]]
    data["notify"]["group_wait"] = 1
    machines = [fleet.host(name).machine for name, _ in fleet.hosts]
    async with manual_worker(data) as first, manual_worker(data) as second:
        for machine in machines:
            machine.mem_fraction = 0.98
        names = [name for name, _ in fleet.hosts]
        for service in (first, second, first):  # both collect every host, concurrently and again
            servers = await service.resolve(names)
            await asyncio.gather(
                first.collect_servers(servers, everything=False), second.collect_servers(servers, everything=False)
            )
            await service.wait_collected(servers, timeout=60)
        await wait_until(lambda: len(receiver.titled("FIRING")) >= len(names), timeout=20)
        for machine in machines:
            machine.mem_fraction = 0.5
        servers = await first.resolve(names)
        await asyncio.gather(
            first.collect_servers(servers, everything=False), second.collect_servers(servers, everything=False)
        )
        await first.wait_collected(servers, timeout=60)
        await wait_until(lambda: len(receiver.titled("RESOLVED")) >= len(names), timeout=20)
        await asyncio.sleep(3)
    assert sorted(receiver.titled("FIRING")) == sorted(set(receiver.titled("FIRING")))
    assert len(receiver.titled("FIRING")) == len(names) and len(receiver.titled("RESOLVED")) == len(names)
    assert len(receiver.messages) <= 4  # a round's alerts in one message, not one per host


async def test_a_host_down_is_one_down_alert_and_holds_its_metric_alerts(
    make_config: Any, database_url: str | None, fleet: SimFleet, receiver: Receiver
) -> None:
    data = alert_config(make_config, database_url, receiver, **{"for": 1, "repeat": 1})
    data["worker"] = {"retries": 1}
    machine = fleet.host("sim-0001").machine
    async with manual_worker(data) as service:
        machine.mem_fraction = 0.98
        await collect(service)
        await wait_until(lambda: receiver.titled("FIRING"), timeout=15)
        await fleet.stop("sim-0001")
        for _ in range(3):
            await collect(service)
        await wait_until(lambda: any(" down: " in line for line in receiver.titled("FIRING")), timeout=15)
        states = {(a.rule, a.state) for a in await service.alerts()}
        assert states == {("down", AlertState.FIRING), ("ram", AlertState.FIRING)}
        assert not [
            line for line in receiver.lines() if "ram" in line and not line.startswith("[FIRING]")
        ]  # no reminder while down
        await fleet.start("sim-0001")
        machine.mem_fraction = 0.5
        await collect(service)
        await wait_until(lambda: len(receiver.titled("RESOLVED")) == 2, timeout=15)
    down_lines = [line for line in receiver.lines() if " down: " in line]
    assert [line.split("]")[0] for line in down_lines] == ["[FIRING", "[RESOLVED"]


async def test_a_receiver_that_is_down_retries_then_shows_the_failure(
    make_config: Any, fleet: SimFleet, receiver: Receiver
) -> None:
    data = alert_config(make_config, None, receiver, **{"for": 1})
    receiver.down = True
    machine = fleet.host("sim-0001").machine
    async with manual_worker(data) as service:
        machine.mem_fraction = 0.98
        await collect(service)
        await wait_until(lambda: receiver.refused >= 2, timeout=30)
        (alert,) = await service.alerts()
        assert alert.notify_error is not None and alert.notify_error.startswith("failure: "), alert.notify_error
        receiver.down = False
        await wait_until(lambda: receiver.titled("FIRING"), timeout=30)
        assert len(receiver.titled("FIRING")) == 1
        (alert,) = await service.alerts()
        assert alert.notify_error is None


async def test_a_silence_holds_notifications_and_ack_stops_reminders(
    make_config: Any, fleet: SimFleet, receiver: Receiver
) -> None:
    data = alert_config(make_config, None, receiver, **{"for": 1, "repeat": 1})
    machine = fleet.host("sim-0001").machine
    async with manual_worker(data) as service:
        silence = await service.silence("sim-0001", rule="ram", duration_s=3600, comment="maintenance")
        machine.mem_fraction = 0.98
        await collect(service)
        await collect(service)
        (alert,) = await service.alerts()
        assert alert.state is AlertState.FIRING and alert.silenced_until == silence.until
        await asyncio.sleep(1.5)
        assert receiver.messages == []
        await service.expire_silence(silence.id)
        await collect(service)
        await wait_until(lambda: receiver.titled("FIRING"), timeout=15)
        await asyncio.sleep(1.1)
        await collect(service)
        await wait_until(lambda: receiver.titled("STILL FIRING"), timeout=15)
        await service.ack_alert(alert.id)
        reminders = len(receiver.titled("STILL FIRING"))
        for _ in range(2):
            await asyncio.sleep(1.1)
            await collect(service)
        await asyncio.sleep(2)
        assert len(receiver.titled("STILL FIRING")) == reminders
        (acked,) = await service.alerts()
        assert acked.acked_by


async def test_a_pending_alert_is_collected_again_after_recheck_not_its_interval(
    make_config: Any, fleet: SimFleet, receiver: Receiver
) -> None:
    # interval 900 s (180 s on the tests' clock), recheck 10 s (2 s): `for: 2` confirms in seconds.
    data = alert_config(make_config, None, receiver, recheck=10)
    fleet.host("sim-0001").machine.mem_fraction = 0.98
    async with service_for(data, worker=True) as service:
        await wait_until(lambda: receiver.titled("FIRING"), timeout=scaled(10) + 15)
        (server,) = await service.resolve(["sim-0001"])
        runs = [run for run in await service.repo.recent_runs(server.id, 10) if run.status == "ok"]
        assert len(runs) == 2
        gap = (runs[0].started_at - runs[1].started_at).total_seconds()
        assert gap < scaled(10) + 2, gap


async def test_a_host_failing_toward_down_after_is_collected_again_after_recheck(
    make_config: Any, fleet: SimFleet, receiver: Receiver
) -> None:
    data = alert_config(make_config, None, receiver, recheck=10, down_after=2)
    data["worker"] = {"retries": 1}
    await fleet.stop("sim-0001")
    async with service_for(data, worker=True):
        await wait_until(lambda: any(" down: " in line for line in receiver.titled("FIRING")), timeout=scaled(10) + 20)


async def test_disabling_a_server_ends_its_alerts_with_a_resolved(
    make_config: Any, database_url: str | None, fleet: SimFleet, receiver: Receiver
) -> None:
    """Nothing judges a disabled server any more: its firing alert must not stay open for ever
    (on the dashboard, in `fleettop alerts`) with nobody told it ended."""
    from fleettop.queue.scheduler import reconcile

    data = alert_config(make_config, database_url, receiver, **{"for": 1})
    fleet.host("sim-0001").machine.mem_fraction = 0.98
    async with manual_worker(data) as service:
        await collect(service)
        await wait_until(lambda: receiver.titled("FIRING"), timeout=15)
    data["servers"][0]["enabled"] = False  # the config edited, and the worker started again
    async with manual_worker(data) as service:
        result = await reconcile(service.context)  # as the worker's scheduler does every 10 s
        assert result.alerts_ended == 1
        assert await service.alerts() == []
        await wait_until(lambda: receiver.titled("RESOLVED"), timeout=15)
        assert (await reconcile(service.context)).alerts_ended == 0  # once
    assert receiver.titled("RESOLVED")[0].startswith("[RESOLVED] sim-0001 ram")


async def test_removing_a_server_still_sends_the_resolved_owed(
    make_config: Any, database_url: str | None, fleet: SimFleet, receiver: Receiver
) -> None:
    """A server removed while its alert fires: whoever was told of the FIRING hears it ended; the
    alert's rows go with the server, the message owed does not."""
    data = alert_config(make_config, database_url, receiver, **{"for": 1})
    data["servers"] = []  # added from the dashboard or the CLI: removable
    fleet.host("sim-0001").machine.mem_fraction = 0.98
    async with manual_worker(data) as service:
        (cfg,) = [cfg for cfg in fleet.server_configs() if cfg.name == "sim-0001"]
        await service.add_server(cfg)
        await collect(service)
        await wait_until(lambda: receiver.titled("FIRING"), timeout=15)
        await service.remove_server("sim-0001")
        await wait_until(lambda: receiver.titled("RESOLVED"), timeout=15)
        assert await service.alerts(everything=True) == []  # gone with its server
    assert receiver.titled("RESOLVED")[0].startswith("[RESOLVED] sim-0001 ram")
