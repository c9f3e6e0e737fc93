"""Threshold rules: pure, so tested exhaustively."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from fleettop.domain import Metrics, Severity, Thresholds, classify, is_alerting, severity

percent = st.floats(min_value=0, max_value=100, allow_nan=False)


def test_boundaries_of_the_default_cpu_threshold():
    assert severity(71.9, 90) is Severity.NORMAL
    assert severity(72.0, 90) is Severity.WARNING  # 80 % of the threshold
    assert severity(89.99, 90) is Severity.WARNING
    assert severity(90.0, 90) is Severity.CRITICAL  # at the threshold
    assert severity(None, 90) is Severity.NORMAL  # not measured yet


@given(value=percent, threshold=percent)
def test_severity_is_monotonic_in_the_value(value, threshold):
    order = [Severity.NORMAL, Severity.WARNING, Severity.CRITICAL]
    lower = severity(value, threshold)
    higher = severity(min(100.0, value + 1), threshold)
    assert order.index(higher) >= order.index(lower)
    assert (lower is Severity.CRITICAL) == (value >= threshold)


def _metrics(cpu: float, ram: float, disk: float | None) -> Metrics:
    return Metrics(
        collected_at=datetime(2026, 1, 1, tzinfo=UTC), cpu_percent=cpu, mem_percent=ram, disk_percent=disk,
        load1=0, load5=0, load15=0, procs=1, uptime_s=1,
    )


def test_classify_uses_each_servers_own_thresholds():
    metrics = _metrics(cpu=85, ram=50, disk=93)
    assert classify(metrics, Thresholds()) == {"cpu": Severity.WARNING, "ram": Severity.NORMAL, "disk": Severity.CRITICAL}
    strict = Thresholds(cpu=80, ram=50, disk=95)
    assert classify(metrics, strict) == {"cpu": Severity.CRITICAL, "ram": Severity.CRITICAL, "disk": Severity.WARNING}
    assert is_alerting(metrics, Thresholds()) and not is_alerting(_metrics(10, 10, None), Thresholds())
