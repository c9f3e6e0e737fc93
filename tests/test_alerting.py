"""The alert rules (fleettop.alerting), as a store would drive them: open alerts in, changes out."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleettop.alerting import (
    Alert,
    AlertPolicy,
    AlertState,
    Evaluation,
    EventKind,
    Silence,
    describe,
    evaluate_failure,
    evaluate_sample,
    message_title,
)
from fleettop.domain import DiskUsage, Metrics, Thresholds

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
STEP = timedelta(minutes=1)
SERVER = 7


def metrics(
    at: datetime, cpu: float | None = 10.0, ram: float = 10.0, disks: dict[str, float] | None = None
) -> Metrics:
    return Metrics(
        collected_at=at,
        cpu_percent=cpu,
        mem_percent=ram,
        load1=0,
        load5=0,
        load15=0,
        procs=1,
        uptime_s=1,
        disks=[DiskUsage(mount=m, used_bytes=1, total_bytes=2, percent=p) for m, p in (disks or {"/": 10.0}).items()],
    )


class Host:
    """A store in memory: the open alerts of one server, every event queued, every row written."""

    def __init__(self, policy: AlertPolicy | None = None, thresholds: Thresholds | None = None):
        self.policy = policy or AlertPolicy()
        self.thresholds = thresholds or Thresholds()
        self.open: dict[tuple[str, str], Alert] = {}
        self.history: list[Alert] = []
        self.events: list[tuple[EventKind, Alert]] = []
        self.silences: list[Silence] = []
        self.at = T0
        self._ids = 0

    def apply(self, result: Evaluation) -> Evaluation:
        for alert in result.cleared:
            del self.open[alert.key]
        for alert in result.changed:
            if alert.id is None:
                self._ids += 1
                alert = replace(alert, id=self._ids)
            if alert.state is AlertState.RESOLVED:
                self.open.pop(alert.key, None)
                self.history.append(alert)
            else:
                self.open[alert.key] = alert
        self.events.extend((event.kind, event.alert) for event in result.events)
        return result

    def sample(self, **figures: object) -> Evaluation:
        self.at += STEP
        result = evaluate_sample(
            self.policy, SERVER, list(self.open.values()), metrics(self.at, **figures), self.thresholds, self.silences
        )  # type: ignore[arg-type]
        return self.apply(result)

    def fail(self) -> Evaluation:
        self.at += STEP
        return self.apply(evaluate_failure(self.policy, SERVER, list(self.open.values()), self.at, self.silences))

    def kinds(self, rule: str | None = None) -> list[str]:
        return [kind.value for kind, alert in self.events if rule in (None, alert.rule)]


def test_for_two_samples_fires_on_the_second_and_not_before() -> None:
    host = Host()
    host.sample(cpu=95)
    assert host.open[("cpu", "")].state is AlertState.PENDING
    assert host.events == []
    host.sample(cpu=96)
    alert = host.open[("cpu", "")]
    assert alert.state is AlertState.FIRING and alert.fired_at == host.at and alert.started_at == T0 + STEP
    assert host.kinds() == ["firing"]


def test_for_one_fires_at_once() -> None:
    host = Host(AlertPolicy(for_samples=1))
    host.sample(ram=99)
    assert host.open[("ram", "")].state is AlertState.FIRING
    assert host.kinds() == ["firing"]


def test_one_good_sample_clears_a_pending_alert_without_a_message() -> None:
    host = Host(AlertPolicy(for_samples=3))
    host.sample(cpu=95)
    host.sample(cpu=95)
    result = host.sample(cpu=50)
    assert [a.rule for a in result.cleared] == ["cpu"] and host.open == {}
    host.sample(cpu=95)
    host.sample(cpu=95)
    assert host.open[("cpu", "")].state is AlertState.PENDING  # the count started again
    host.sample(cpu=95)
    assert host.kinds() == ["firing"]


def test_flapping_at_the_threshold_gives_one_firing_and_one_resolved() -> None:
    host = Host()
    for value in [91, 93, 88, 92, 87, 91, 89, 93, 88, 90, 86, 92, 89, 91, 88, 94, 87, 90, 89, 92]:
        host.sample(cpu=value)
    assert host.kinds() == ["firing"]
    alert = host.open[("cpu", "")]
    assert alert.peak == 94 and alert.value == 92
    host.sample(cpu=86)  # under the threshold, not yet under threshold - margin
    assert host.kinds() == ["firing"]
    host.sample(cpu=85)
    assert host.kinds() == ["firing", "resolved"]
    resolved = host.history[-1]
    assert resolved.state is AlertState.RESOLVED and resolved.resolved_at == host.at and resolved.peak == 94


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=60), st.integers(1, 4), st.integers(0, 10)
)
def test_any_sequence_alternates_firing_and_resolved(values: list[float], for_samples: int, margin: int) -> None:
    host = Host(AlertPolicy(for_samples=for_samples, recovery_margin=margin, repeat_s=0))
    for value in values:
        host.sample(cpu=value)
    kinds = host.kinds()
    assert kinds == ["firing", "resolved"] * (len(kinds) // 2) + ["firing"] * (len(kinds) % 2)
    assert (("cpu", "") in host.open and host.open[("cpu", "")].state is AlertState.FIRING) == (len(kinds) % 2 == 1)


def test_the_threshold_is_judged_on_the_figure_as_shown() -> None:
    host = Host(AlertPolicy(for_samples=1))
    host.sample(cpu=89.4)
    assert host.open == {}
    host.sample(cpu=89.5)  # shows as 90%, critical in colour: an alert too
    assert host.kinds() == ["firing"]


def test_one_alert_per_mount_labelled_with_it() -> None:
    host = Host(AlertPolicy(for_samples=1))
    host.sample(disks={"/": 50, "/var": 95, "/data": 91})
    assert sorted(host.open) == [("disk", "/data"), ("disk", "/var")]
    host.sample(disks={"/": 50, "/var": 80, "/data": 91})
    assert [(k, a.label) for k, a in host.events] == [
        (EventKind.FIRING, "/var"),
        (EventKind.FIRING, "/data"),
        (EventKind.RESOLVED, "/var"),
    ]


def test_a_mount_that_is_gone_ends_its_alert() -> None:
    host = Host(AlertPolicy(for_samples=1))
    host.sample(disks={"/": 50, "/mnt": 99})
    host.sample(disks={"/": 50})
    assert host.kinds() == ["firing", "resolved"] and host.open == {}


def test_a_cpu_figure_not_known_yet_leaves_the_alert_as_it_is() -> None:
    host = Host(AlertPolicy(for_samples=2))
    host.sample(cpu=95)
    host.sample(cpu=None)
    assert host.open[("cpu", "")].count == 1
    host.sample(cpu=95)
    assert host.kinds() == ["firing"]


def test_thresholds_are_the_servers() -> None:
    host = Host(AlertPolicy(for_samples=1), Thresholds(cpu=50))
    host.sample(cpu=60)
    assert host.open[("cpu", "")].threshold == 50
    assert host.kinds() == ["firing"]


def test_down_after_failed_collections_then_resolved_by_the_next_sample() -> None:
    host = Host(AlertPolicy(down_after=3))
    host.fail()
    host.fail()
    assert host.open[("down", "")].state is AlertState.PENDING and host.events == []
    host.fail()
    assert host.open[("down", "")].state is AlertState.FIRING and host.kinds() == ["firing"]
    host.fail()
    assert host.kinds() == ["firing"] and host.open[("down", "")].count == 4
    host.sample()
    assert host.kinds() == ["firing", "resolved"] and host.open == {}


def test_a_pending_down_clears_without_a_message() -> None:
    host = Host(AlertPolicy(down_after=2))
    host.fail()
    host.sample()
    host.fail()
    assert host.open[("down", "")].state is AlertState.PENDING and host.events == []


def test_down_holds_back_the_hosts_other_alerts() -> None:
    host = Host(AlertPolicy(for_samples=1, down_after=1, repeat_s=180))
    host.sample(cpu=95)
    assert host.kinds() == ["firing"]
    for _ in range(5):
        host.fail()
    assert host.kinds("cpu") == ["firing"]  # no cpu reminder while down
    assert host.kinds("down") == ["firing", "reminder"]
    host.sample(cpu=95)  # back, still hot: down resolves, cpu reminds (its last message is old)
    assert host.kinds("down") == ["firing", "reminder", "resolved"]
    assert host.kinds("cpu") == ["firing", "reminder"]


def test_a_metric_alert_of_a_host_going_down_on_the_same_evaluation_sends_nothing() -> None:
    host = Host(AlertPolicy(for_samples=2, down_after=1))
    host.sample(cpu=95)  # pending
    host.fail()
    host.sample(cpu=95)  # down resolved by this sample first, then cpu fires
    assert host.kinds() == ["firing", "resolved", "firing"]
    assert [a.rule for _, a in host.events] == ["down", "down", "cpu"]


def test_reminders_every_repeat_until_acknowledged() -> None:
    host = Host(AlertPolicy(for_samples=1, repeat_s=180))
    host.sample(cpu=95)
    for _ in range(6):
        host.sample(cpu=95)
    assert host.kinds() == ["firing", "reminder", "reminder"]
    alert = host.open[("cpu", "")]
    host.open[("cpu", "")] = replace(alert, acked_by="ops@box", acked_at=host.at)
    for _ in range(6):
        host.sample(cpu=95)
    host.sample(cpu=10)
    assert host.kinds() == ["firing", "reminder", "reminder", "resolved"]


def test_no_reminders_when_repeat_is_zero() -> None:
    host = Host(AlertPolicy(for_samples=1, repeat_s=0))
    for _ in range(10):
        host.sample(cpu=95)
    assert host.kinds() == ["firing"]


def test_a_silence_holds_the_firing_back_and_the_resolved_too() -> None:
    host = Host(AlertPolicy(for_samples=1))
    host.silences = [Silence(SERVER, until=T0 + 10 * STEP)]
    host.sample(cpu=95)
    assert host.open[("cpu", "")].state is AlertState.FIRING  # tracked
    host.sample(cpu=10)
    assert host.events == [] and host.history[-1].notified_at is None


def test_a_firing_held_by_a_silence_goes_out_when_it_ends() -> None:
    host = Host(AlertPolicy(for_samples=1))
    host.silences = [Silence(SERVER, until=T0 + 3 * STEP)]
    host.sample(cpu=95)
    host.sample(cpu=95)
    assert host.events == []
    host.sample(cpu=95)  # at T0 + 3 steps: the silence is over
    assert host.kinds() == ["firing"]


def test_a_resolved_follows_a_sent_firing_even_when_silenced_since() -> None:
    host = Host(AlertPolicy(for_samples=1))
    host.sample(cpu=95)
    host.silences = [Silence(SERVER, until=T0 + 100 * STEP)]
    host.sample(cpu=10)
    assert host.kinds() == ["firing", "resolved"]


def test_a_silence_of_one_rule_leaves_the_others() -> None:
    host = Host(AlertPolicy(for_samples=1))
    host.silences = [Silence(SERVER, until=T0 + 100 * STEP, rule="disk"), Silence(SERVER + 1, until=T0 + 100 * STEP)]
    host.sample(cpu=95, disks={"/": 99})
    assert host.kinds() == ["firing"] and host.events[0][1].rule == "cpu"


def test_send_resolved_false() -> None:
    host = Host(AlertPolicy(for_samples=1, send_resolved=False))
    host.sample(cpu=95)
    host.sample(cpu=10)
    assert host.kinds() == ["firing"] and host.open == {}


@pytest.mark.parametrize(
    ("kind", "alert", "expected"),
    [
        (
            EventKind.FIRING,
            Alert(1, "disk", "/var", AlertState.FIRING, T0, 93.2, 95.0, 90.0),
            "[FIRING] web-1 disk /var: 94% (threshold 90%, peak 95%), since 2026-12-06 10:00 UTC",
        ),
        (  # a disk as df shows it: rounded up (what the threshold was judged on)
            EventKind.FIRING,
            Alert(1, "disk", "/", AlertState.FIRING, T0, 89.2, 89.4, 89.0),
            "[FIRING] web-1 disk /: 90% (threshold 89%, peak 90%), since 2026-12-06 10:00 UTC",
        ),
        (
            EventKind.RESOLVED,
            Alert(1, "cpu", "", AlertState.RESOLVED, T0, 40, 97, 90, resolved_at=T0 + 5 * STEP),
            "[RESOLVED] web-1 cpu: 40% (threshold 90%, peak 97%), since 2026-12-06 10:00 UTC, resolved 10:05 UTC",
        ),
        (
            EventKind.REMINDER,
            Alert(1, "down", "", AlertState.FIRING, T0, 3, 3, count=3),
            "[STILL FIRING] web-1 down: 3 failed collection(s), since 2026-12-06 10:00 UTC",
        ),
    ],
)
def test_describe(kind: EventKind, alert: Alert, expected: str) -> None:
    assert describe(kind, alert, "web-1") == expected


def test_message_title() -> None:
    assert message_title([EventKind.FIRING, EventKind.RESOLVED, EventKind.FIRING]) == "fleettop: 2 firing, 1 resolved"
