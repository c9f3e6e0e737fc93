"""/metrics as Prometheus reads it: the output parsed by prometheus_client's own parsers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from fleettop.api.auth import Tokens
from fleettop.api.exposition import Exposition, wants_openmetrics
from fleettop.domain import Counters, DiskUsage, QueueStats, Sample, Server, WorkerInfo
from fleettop.views import ServerView

AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def row(
    server_id: int, name: str, status: str = "up", *, sample: bool = True, duration: float | None = 0.25
) -> ServerView:
    latest = (
        Sample(
            server_id=server_id,
            collected_at=AT,
            cpu_percent=12.5,
            mem_percent=50.0,
            mem_used_bytes=3 * 2**30,
            mem_total_bytes=8 * 2**30,
            swap_used_bytes=2**20,
            swap_total_bytes=2**30,
            load1=0.5,
            load5=0.25,
            load15=0.125,
            procs=210,
            uptime_s=3600.0,
            disks=[
                DiskUsage(
                    mount="/",
                    device="/dev/sda1",
                    fstype="ext4",
                    used_bytes=40,
                    total_bytes=100,
                    percent=44.5,
                    avail_bytes=50,
                ),
                DiskUsage(
                    mount='/srv/"odd"\\dir\n',
                    device="tmpfs",
                    fstype="tmpfs",
                    used_bytes=1,
                    total_bytes=10,
                    percent=10.0,
                ),
            ],
            counters=Counters(
                uptime_s=3600.0, cpu_total=1000, cpu_idle=900, net_rx_bytes=123456789012, net_tx_bytes=42
            ),
        )
        if sample
        else None
    )
    return ServerView(
        server=Server(id=server_id, name=name, host="10.0.0.1"),
        latest=latest,
        status=status,  # type: ignore[arg-type]
        last_duration_s=duration,
    )


ROWS = [
    row(1, "web-1"),
    row(2, "db-1", "down"),
    row(3, "new-1", "unknown", sample=False, duration=None),
    row(4, "off-1", "disabled"),
    row(5, "old-1", "stale"),
]
QUEUE = QueueStats(
    waiting=3,
    active=1,
    delayed=2,
    completed=40,
    failed=5,
    scheduled=4,
    paused=True,
    workers=[WorkerInfo(id="ops-1:41:ab", host="ops-1", pid=41, scheduling=True, servers=3, connections=2)],
)


def samples(text: str, parse=parse_text) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in parse(text)
        for sample in family.samples
    }


@pytest.mark.parametrize("openmetrics", [False, True])
def test_each_server_as_node_exporter_names_it(openmetrics: bool):
    body = Exposition().render(ROWS, QUEUE, openmetrics=openmetrics).decode()
    found = samples(body, parse_openmetrics if openmetrics else parse_text)

    def value(name: str, server: str, **labels: str) -> float | None:
        return found.get((name, tuple(sorted({"server": server, **labels}.items()))))

    assert value("fleettop_up", "web-1") == 1
    assert value("fleettop_up", "old-1") == 1  # stale: its last run succeeded, long ago
    assert value("fleettop_up", "db-1") == 0
    assert value("fleettop_up", "new-1") == 0  # none finished yet
    assert value("fleettop_up", "off-1") is None  # disabled: not monitored, no series
    assert value("fleettop_last_collect_timestamp_seconds", "web-1") == AT.timestamp()
    assert value("fleettop_last_collect_timestamp_seconds", "db-1") == AT.timestamp()  # when it last worked
    assert value("fleettop_last_collect_duration_seconds", "web-1") == 0.25
    assert value("node_load1", "web-1") == 0.5 and value("node_load15", "web-1") == 0.125
    assert value("node_load1", "db-1") is None  # down: its last figures are not exported as if current
    assert value("fleettop_cpu_usage_ratio", "web-1") == 0.125
    assert value("node_memory_MemTotal_bytes", "web-1") == 8 * 2**30
    assert value("node_memory_MemAvailable_bytes", "web-1") == 5 * 2**30
    assert value("node_memory_SwapFree_bytes", "web-1") == 2**30 - 2**20
    root = {"device": "/dev/sda1", "mountpoint": "/", "fstype": "ext4"}
    assert value("node_filesystem_size_bytes", "web-1", **root) == 100
    assert value("node_filesystem_avail_bytes", "web-1", **root) == 50
    odd = {"device": "tmpfs", "mountpoint": '/srv/"odd"\\dir\n', "fstype": "tmpfs"}  # escaped, and read back as it was
    assert value("node_filesystem_avail_bytes", "web-1", **odd) == 9  # no Avail recorded: size - used
    assert value("node_network_receive_bytes_total", "web-1") == 123456789012
    assert value("node_boot_time_seconds", "web-1") == AT.timestamp() - 3600
    assert found[("fleettop_servers", (("status", "down"),))] == 1
    assert found[("fleettop_servers", (("status", "disabled"),))] == 1
    assert found[("fleettop_queue_jobs", (("state", "waiting"),))] == 3
    assert found[("fleettop_queue_runs", (("outcome", "failed"),))] == 5
    assert found[("fleettop_queue_paused", ())] == 1
    worker = (("host", "ops-1"), ("worker", "ops-1:41:ab"))
    assert (found[("fleettop_worker_servers", worker)], found[("fleettop_worker_connections", worker)]) == (3, 2)
    kinds = {family.name: family.type for family in (parse_openmetrics if openmetrics else parse_text)(body)}
    assert kinds["node_network_receive_bytes"] == "counter"  # both parsers name the family without _total
    assert kinds["node_load1"] == "gauge"


def test_a_changed_row_is_formatted_again_and_a_removed_one_forgotten():
    exposition = Exposition()
    first = exposition.render(ROWS, None).decode()
    assert "fleettop_queue" not in first  # the queue unread (Redis away): its series left out
    changed = row(1, "web-1", "down")
    second = exposition.render([changed, *ROWS[1:3]], None).decode()
    assert 'fleettop_up{server="web-1"} 0' in second and 'node_load1{server="web-1"}' not in second
    assert 'server="old-1"' not in second


def test_openmetrics_is_chosen_as_prometheus_asks_for_it():
    prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"
    assert wants_openmetrics(prometheus)
    assert not wants_openmetrics("text/plain; version=0.0.4") and not wants_openmetrics(None)


def test_tokens_name_the_holder_and_nothing_else():
    tokens = Tokens({"grafana": "g" * 32, "chatops": "c" * 32})
    assert tokens.holder("Bearer " + "c" * 32) == "chatops"
    assert tokens.holder("bearer  " + "g" * 32 + " ") == "grafana"
    for wrong in (
        None,
        "",
        "Bearer",
        "Bearer " + "g" * 31,
        "Basic " + "g" * 32,
        "Bearer " + "g" * 32 + "x",
        "Bearer é",
    ):
        assert tokens.holder(wrong) is None, wrong
    assert not Tokens({})
