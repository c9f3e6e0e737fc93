"""Figures rounded as the standard tools round them, in the CLI and the dashboard alike (D26)."""

from __future__ import annotations

import pytest

from fleettop.cli.servers import format_metrics
from fleettop.domain import DiskUsage, Metrics
from fleettop.tui import format as fmt

GiB = 2**30


@pytest.mark.parametrize(
    ("num_bytes", "shown"),
    [
        (23.54 * GiB, "23Gi"),  # free -h: 23Gi, cut down, never rounded up to 24
        (3.86 * GiB, "3.8Gi"),
        (252 * GiB, "252Gi"),
        (906 * 2**20, "906Mi"),
        (1536, "1.5Ki"),
        (512, "512B"),
        (0, "0B"),
    ],
)
def test_sizes_read_as_free_h_shows_them(num_bytes, shown):
    assert fmt.size(num_bytes) == shown


@pytest.mark.parametrize(
    ("percent", "shown"), [(23.2, "24%"), (90.01, "91%"), (23.0, "23%"), (100 * 7 / 7, "100%"), (0.0, "0%")]
)
def test_a_disk_percent_is_rounded_up_as_df_rounds_it(percent, shown):
    assert fmt.disk_percent(percent) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(45, "45s"), (12 * 60, "12m"), (20 * 3600 + 23 * 60, "20h23m"), (302 * 86400 + 7 * 3600, "302d07h")],
)
def test_an_uptime_names_every_unit(seconds, shown):
    assert fmt.duration(seconds) == shown


def test_servers_test_uses_the_same_units_and_shows_what_a_mount_has_free():
    metrics = Metrics.model_validate(
        {
            "collected_at": "2026-12-06T08:00:00Z",
            "cpu_percent": 5.0,
            "mem_percent": 3.8,
            "mem_used_bytes": 906 * 2**20,
            "mem_total_bytes": int(23.54 * GiB),
            "swap_percent": 0.0,
            "swap_used_bytes": 0,
            "swap_total_bytes": 0,
            "disk_percent": 9.5,
            "load1": 0.1,
            "load5": 0.1,
            "load15": 0.1,
            "procs": 90,
            "uptime_s": 73380,
            "disks": [
                DiskUsage(
                    mount="/",
                    device="/dev/sda1",
                    fstype="ext4",
                    used_bytes=23 * GiB,
                    avail_bytes=218 * GiB,
                    total_bytes=252 * GiB,
                    percent=9.5,
                )
            ],
        }
    )
    text = format_metrics(metrics)
    assert "906Mi of 23Gi" in text
    assert "23Gi of 252Gi, 218Gi free" in text
    assert "uptime   20h23m" in text
