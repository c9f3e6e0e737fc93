"""The simulator's rendering and the parser agree (they cannot drift apart), and the figures move."""

from __future__ import annotations

import random
import time

import pytest

from fleettop.probe.parse import compute, parse
from fleettop.probe.sim import ProcCounters, ProcSnapshot, SimMachine, SimMount, render_probe_output


def snapshot(**changes) -> ProcSnapshot:
    values = dict(
        counters=ProcCounters(
            uptime_s=5000.5,
            cpu=(700, 10, 200, 8000, 90, 0, 0, 0),
            interfaces={"lo": (99, 99), "eth0": (5000, 700), "eth1": (1, 2)},
        ),
        load=(1.5, 0.75, 0.25),
        procs=123,
        mem_total_kib=4_000_000,
        mem_available_kib=1_000_000,
        swap_total_kib=2_000_000,
        swap_free_kib=1_500_000,
        mounts=[
            SimMount("proc", "/proc", "proc"),
            SimMount("tmpfs", "/run", "tmpfs", 1000, 10, 990),
            SimMount("/dev/vda1", "/", "ext4", 1_000_000, 600_000, 350_000),
            SimMount("/dev/vda1", "/var/lib/bind", "ext4", 1_000_000, 600_000, 350_000),
            SimMount("/dev/vdb", "/srv/my data", "xfs", 2_000_000, 100_000, 1_900_000),
        ],
    )
    values.update(changes)
    return ProcSnapshot(**values)


def test_render_and_parse_agree():
    raw = parse(render_probe_output(snapshot(), noise="motd line\n"))
    assert raw.counters.uptime_s == 5000.5
    assert (raw.counters.cpu_total, raw.counters.cpu_idle) == (9000, 8090)
    assert (raw.counters.net_rx_bytes, raw.counters.net_tx_bytes) == (5001, 702)
    assert (raw.load1, raw.load5, raw.load15, raw.procs) == (1.5, 0.75, 0.25, 123)
    assert (raw.mem_total_bytes, raw.mem_available_bytes) == (4_000_000 * 1024, 1_000_000 * 1024)
    assert (raw.swap_total_bytes, raw.swap_free_bytes) == (2_000_000 * 1024, 1_500_000 * 1024)
    assert [(d.mount, d.device, d.fstype) for d in raw.disks] == [
        ("/", "/dev/vda1", "ext4"),
        ("/srv/my data", "/dev/vdb", "xfs"),
    ]
    assert raw.disks[0].percent == pytest.approx(100 * 600_000 / 950_000)
    assert raw.first_counters is None


def test_first_contact_rendering_carries_both_samples():
    first = ProcCounters(uptime_s=5000.25, cpu=(690, 10, 200, 7990, 90, 0, 0, 0), interfaces={"eth0": (4000, 600)})
    metrics = compute(parse(render_probe_output(snapshot(), first)), None).metrics
    assert metrics.cpu_percent == pytest.approx(100 * 10 / 20)
    assert metrics.net_rx_bps == pytest.approx(1001 / 0.25)


def test_machines_are_varied_and_move():
    machines = [SimMachine(random.Random(seed), reboots=False) for seed in range(200)]
    assert any(m.busy for m in machines) and not all(m.busy for m in machines)
    fullest = [max(d.used_kib / d.total_kib for d in m.disks) for m in machines]
    assert max(fullest) > 0.85 and min(fullest) < 0.5
    machine = machines[0]
    before = machine.counters()
    time.sleep(0.05)
    machine.advance()
    after = machine.counters()
    assert after.uptime_s > before.uptime_s and sum(after.cpu) > sum(before.cpu)
    assert after.interfaces["eth0"][0] > before.interfaces["eth0"][0]


def test_rebooting_machine_resets_uptime():
    machine = SimMachine(random.Random(1), reboots=True)
    machine.reboot_every = 0.01
    time.sleep(0.02)
    machine.advance()
    assert machine.uptime == 0.0
    assert compute(parse(render_probe_output(machine.snapshot())), None).metrics.uptime_s == 0.0
