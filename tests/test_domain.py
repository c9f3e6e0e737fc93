"""Threshold rules: pure, so tested exhaustively."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from fleettop.domain import (
    Metrics,
    Severity,
    Thresholds,
    classify,
    is_alerting,
    severity,
    shown_disk_percent,
    shown_percent,
)
from fleettop.figures import disk_percent

percent = st.floats(min_value=0, max_value=100, allow_nan=False)


def test_boundaries_of_the_default_cpu_threshold():
    """Judged on the whole percent shown: 71.4 shows as 71%, 71.6 as 72%, 89.6 as 90%."""
    assert severity(71.4, 90) is Severity.NORMAL
    assert severity(71.6, 90) is Severity.WARNING  # "72%": 80 % of the threshold
    assert severity(72.0, 90) is Severity.WARNING
    assert severity(89.4, 90) is Severity.WARNING
    assert severity(89.6, 90) is Severity.CRITICAL  # "90%": at the threshold
    assert severity(90.0, 90) is Severity.CRITICAL
    assert severity(94.6, 95) is Severity.CRITICAL  # "95%"
    assert severity(None, 90) is Severity.NORMAL  # not measured yet


@given(value=percent, threshold=percent)
def test_severity_is_monotonic_in_the_value(value, threshold):
    order = [Severity.NORMAL, Severity.WARNING, Severity.CRITICAL]
    lower = severity(value, threshold)
    higher = severity(min(100.0, value + 1), threshold)
    assert order.index(higher) >= order.index(lower)
    assert (lower is Severity.CRITICAL) == (shown_percent(value) >= threshold)


@given(value=percent, threshold=percent)
def test_the_colour_follows_the_figure_as_shown(value, threshold):
    """Two figures shown alike are coloured alike (D12: "90%" at a threshold of 90 is red)."""
    shown = float(shown_percent(value))
    assert f"{shown:.0f}" == str(shown_percent(value))
    assert severity(value, threshold) is severity(shown, threshold)


def _metrics(cpu: float, ram: float, disk: float | None) -> Metrics:
    return Metrics(
        collected_at=datetime(2026, 1, 1, tzinfo=UTC),
        cpu_percent=cpu,
        mem_percent=ram,
        disk_percent=disk,
        load1=0,
        load5=0,
        load15=0,
        procs=1,
        uptime_s=1,
    )


def test_classify_uses_each_servers_own_thresholds():
    metrics = _metrics(cpu=85, ram=50, disk=93)
    assert classify(metrics, Thresholds()) == {
        "cpu": Severity.WARNING,
        "ram": Severity.NORMAL,
        "disk": Severity.CRITICAL,
    }
    strict = Thresholds(cpu=80, ram=50, disk=95)
    assert classify(metrics, strict) == {"cpu": Severity.CRITICAL, "ram": Severity.CRITICAL, "disk": Severity.WARNING}
    assert is_alerting(metrics, Thresholds()) and not is_alerting(_metrics(10, 10, None), Thresholds())


def test_a_disk_is_judged_on_the_percent_df_shows():
    """A disk's figure is rounded up as df does (89.2 shows as "90%"), so at a threshold of 90
    it is critical, as the figure says; cpu and ram round halves up."""
    assert disk_percent(89.2) == "90%" and severity(89.2, 90, shown_disk_percent) is Severity.CRITICAL
    assert severity(89.2, 90) is Severity.WARNING  # cpu/ram: shown as "89%"
    assert disk_percent(90.0) == "90%" and shown_disk_percent(90.0000000001) == 90
