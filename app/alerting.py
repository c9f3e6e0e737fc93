"""The alert rules: per server and rule (cpu, ram, disk per mount, down), one open episode
that goes pending -> firing -> resolved, and the notifications each evaluation owes.

Pure: the store reads a server's open alerts and silences, calls `evaluate_sample` or
`evaluate_failure` in the transaction that records the sample (or the failed collection),
and writes back what comes out. Semantics (issue #14, notes/alerting.md):
- `for_samples` consecutive samples past the threshold fire an alert; one sample under it
  clears a pending alert (Prometheus's `for`), with no notification.
- A firing alert resolves only at `recovery_margin` points under its threshold (Zabbix's
  recovery expression), so a value hovering at the threshold fires once and resolves once.
- `down_after` failed collections in a row make a host `down`; while it is down (pending or
  firing) its cpu/ram/disk alerts send nothing; its next sample resolves it.
- A firing alert, unacknowledged and not silenced, is sent again every `repeat_s` (0: never).
- A silenced alert is tracked as usual but sends nothing; a FIRING held back by a silence goes
  out at the first evaluation after it ends. A RESOLVED is sent exactly when a FIRING was
  (`notified_at`), silenced or not: whoever was paged hears the end of it.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from fleettop.domain import Metrics, Severity, Thresholds, severity, shown_disk_percent, shown_percent

METRIC_RULES = ("cpu", "ram", "disk")
RESOLVED_SHOWN = timedelta(days=7)  # how far back `alerts --all` and the alerts screen show resolved alerts
RULES = (*METRIC_RULES, "down")


class AlertState(str, enum.Enum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class EventKind(str, enum.Enum):
    FIRING = "firing"
    RESOLVED = "resolved"
    REMINDER = "reminder"


@dataclass(frozen=True)
class AlertPolicy:
    """The `alerts:` and `notify:` settings the rules use."""

    for_samples: int = 2
    recovery_margin: float = 5.0
    down_after: int = 1
    repeat_s: float = 14400.0
    send_resolved: bool = True


@dataclass(frozen=True)
class Alert:
    """One episode of one rule on one server; `id` None until stored."""

    server_id: int
    rule: str
    label: str  # the mount point of a disk alert, "" otherwise
    state: AlertState
    started_at: datetime
    value: float | None = None
    peak: float | None = None
    threshold: float | None = None
    count: int = 1  # samples past the threshold in a row, or failed collections in a row (down)
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    notified_at: datetime | None = None  # when its FIRING (or last reminder) was queued; None: never
    acked_by: str | None = None
    acked_at: datetime | None = None
    id: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule, self.label)


@dataclass(frozen=True)
class Silence:
    """Notifications of a server (one rule, or all when `rule` is None) held back until `until`."""

    server_id: int
    until: datetime
    rule: str | None = None
    id: int | None = None

    def covers(self, alert: Alert, at: datetime) -> bool:
        return self.server_id == alert.server_id and at < self.until and self.rule in (None, alert.rule)


@dataclass(frozen=True)
class Event:
    """A notification owed: the alert as it is after this evaluation."""

    kind: EventKind
    alert: Alert


@dataclass
class Evaluation:
    """What to write back: alerts new or changed (resolved ones included), pending alerts that
    cleared (delete them), and the notifications to queue."""

    changed: list[Alert] = field(default_factory=list)
    cleared: list[Alert] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class Reading:
    value: float
    threshold: float
    breached: bool  # past the threshold, judged on the figure as shown (as the colour is)
    recovered: bool  # at least recovery_margin under it


def readings(metrics: Metrics, thresholds: Thresholds, recovery_margin: float) -> dict[tuple[str, str], Reading]:
    """The thresholded figures of one sample, keyed (rule, label)."""
    figures: list[tuple[str, str, float | None, float]] = [
        ("cpu", "", metrics.cpu_percent, thresholds.cpu),
        ("ram", "", metrics.mem_percent, thresholds.ram),
        *(("disk", disk.mount, disk.percent, thresholds.disk) for disk in metrics.disks),
    ]
    found: dict[tuple[str, str], Reading] = {}
    for rule, label, value, threshold in figures:
        if value is None:
            continue
        shown_as = shown_disk_percent if rule == "disk" else shown_percent
        found[(rule, label)] = Reading(
            value=value,
            threshold=threshold,
            breached=severity(value, threshold, shown_as) is Severity.CRITICAL,
            recovered=shown_as(value) <= threshold - recovery_margin,
        )
    return found


def evaluate_sample(
    policy: AlertPolicy,
    server_id: int,
    open_alerts: Sequence[Alert],
    metrics: Metrics,
    thresholds: Thresholds,
    silences: Iterable[Silence] = (),
) -> Evaluation:
    """One successful collection: the host is up (its down alert ends), each figure judged."""
    at = metrics.collected_at
    silences = list(silences)
    result = Evaluation()
    current = {alert.key: alert for alert in open_alerts}
    down = current.pop(("down", ""), None)
    if down is not None:
        _end(policy, down, at, down.value, result)
    seen = readings(metrics, thresholds, policy.recovery_margin)
    for key, reading in seen.items():
        alert = current.pop(key, None)
        if alert is None:
            if reading.breached:
                _new(
                    policy,
                    Alert(
                        server_id,
                        key[0],
                        key[1],
                        AlertState.PENDING,
                        at,
                        reading.value,
                        reading.value,
                        reading.threshold,
                    ),
                    at,
                    silences,
                    result,
                )
            continue
        alert = replace(
            alert,
            value=reading.value,
            peak=max(alert.peak or reading.value, reading.value),
            threshold=reading.threshold,
        )
        if alert.state is AlertState.PENDING:
            if not reading.breached:
                result.cleared.append(alert)
                continue
            alert = replace(alert, count=alert.count + 1)
            if alert.count >= policy.for_samples:
                alert = replace(alert, state=AlertState.FIRING, fired_at=at)
            _keep(policy, alert, at, silences, result, changed=True)
        elif reading.recovered:
            _end(policy, alert, at, reading.value, result)
        else:
            _keep(policy, alert, at, silences, result, changed=True)
    # Figures this sample does not have: a mount gone ends its alert; a cpu figure not yet known
    # (first contact has no previous counters) leaves it as it is.
    for alert in current.values():
        if alert.rule == "disk":
            _end(policy, alert, at, None, result)
        else:
            _keep(policy, alert, at, silences, result, changed=False)
    return result


def evaluate_failure(
    policy: AlertPolicy, server_id: int, open_alerts: Sequence[Alert], at: datetime, silences: Iterable[Silence] = ()
) -> Evaluation:
    """One collection that failed for good (its retries spent): one more toward `down`. The
    host's other alerts stay as they are and send nothing while it is down."""
    silences = list(silences)
    result = Evaluation()
    down = next((alert for alert in open_alerts if alert.key == ("down", "")), None)
    if down is None:
        down = Alert(server_id, "down", "", AlertState.PENDING, at, count=0)
    count = down.count + 1
    alert = replace(down, count=count, value=float(count), peak=float(count))
    if alert.state is AlertState.PENDING and count >= policy.down_after:
        alert = replace(alert, state=AlertState.FIRING, fired_at=at)
    _keep(policy, alert, at, silences, result, changed=True)
    return result


def still_open(before: Sequence[Alert], result: Evaluation) -> list[Alert]:
    """The open alerts after an evaluation of `before`."""
    after = {alert.key: alert for alert in before}
    for alert in result.cleared:
        after.pop(alert.key, None)
    for alert in result.changed:
        after[alert.key] = alert
    return [alert for alert in after.values() if alert.state is not AlertState.RESOLVED]


def _new(policy: AlertPolicy, alert: Alert, at: datetime, silences: list[Silence], result: Evaluation) -> None:
    if alert.count >= policy.for_samples:
        alert = replace(alert, state=AlertState.FIRING, fired_at=at)
    _keep(policy, alert, at, silences, result, changed=True)


def _keep(
    policy: AlertPolicy, alert: Alert, at: datetime, silences: list[Silence], result: Evaluation, *, changed: bool
) -> None:
    """An alert that stays open: what it owes now (its FIRING, late or not, or a reminder)."""
    if alert.state is AlertState.FIRING and not _held_back(alert, at, silences, result):
        if alert.notified_at is None:
            alert = replace(alert, notified_at=at)
            result.events.append(Event(EventKind.FIRING, alert))
            changed = True
        elif (
            policy.repeat_s > 0
            and alert.acked_at is None
            and (at - alert.notified_at).total_seconds() >= policy.repeat_s
        ):
            alert = replace(alert, notified_at=at)
            result.events.append(Event(EventKind.REMINDER, alert))
            changed = True
    if changed:
        result.changed.append(alert)


def _held_back(alert: Alert, at: datetime, silences: list[Silence], result: Evaluation) -> bool:
    if any(silence.covers(alert, at) for silence in silences):
        return True
    # Down (pending or firing) holds back the host's other alerts. Evaluated down first, so
    # `changed` already has it when it is still open.
    return alert.rule != "down" and any(a.rule == "down" and a.state is not AlertState.RESOLVED for a in result.changed)


def evaluate_retired(policy: AlertPolicy, current: Sequence[Alert], at: datetime) -> Evaluation:
    """The server is no longer collected (disabled): nothing will judge its alerts again, so
    each ends now; a RESOLVED is owed for each that was notified."""
    result = Evaluation()
    for alert in current:
        _end(policy, alert, at, None, result)
    return result


def _end(policy: AlertPolicy, alert: Alert, at: datetime, value: float | None, result: Evaluation) -> None:
    if alert.state is AlertState.PENDING:
        result.cleared.append(alert)
        return
    ended = replace(alert, state=AlertState.RESOLVED, resolved_at=at, value=alert.value if value is None else value)
    result.changed.append(ended)
    if ended.notified_at is not None and policy.send_resolved:
        result.events.append(Event(EventKind.RESOLVED, ended))


# ---------------------------------------------------------------------------
# What a person on call reads on a phone.

_TITLES = {EventKind.FIRING: "FIRING", EventKind.RESOLVED: "RESOLVED", EventKind.REMINDER: "STILL FIRING"}


def shown(rule: str, value: float) -> int:
    """A rule's figure as the dashboard shows it (a disk rounded up, as df): what it was judged on."""
    return shown_disk_percent(value) if rule == "disk" else shown_percent(value)


def describe(kind: EventKind, alert: Alert, server_name: str) -> str:
    """One line: server, rule, mount, value against threshold, since when."""
    since = alert.started_at.strftime("%Y-%m-%d %H:%M UTC")
    what = f"disk {alert.label}" if alert.rule == "disk" else alert.rule
    if alert.rule == "down":
        figure = f"{int(alert.value or alert.count)} failed collection(s)"
    else:
        value, peak = shown(alert.rule, alert.value or 0.0), shown(alert.rule, alert.peak or 0.0)
        figure = f"{value}% (threshold {alert.threshold or 0.0:g}%, peak {peak}%)"
    line = f"[{_TITLES[kind]}] {server_name} {what}: {figure}, since {since}"
    if kind is EventKind.RESOLVED and alert.resolved_at is not None:
        line += f", resolved {alert.resolved_at.strftime('%H:%M UTC')}"
    return line


def message_title(kinds: Sequence[EventKind]) -> str:
    """The title of one message gathering a round's events."""
    counts = {kind: sum(1 for k in kinds if k is kind) for kind in EventKind}
    parts = [f"{counts[kind]} {_TITLES[kind].lower()}" for kind in EventKind if counts[kind]]
    return "fleettop: " + ", ".join(parts)


# ---------------------------------------------------------------------------
# What the store hands to the front ends (`fleettop alerts --json` prints AlertRecord's fields).


class AlertRecord(BaseModel):
    id: int
    server: str
    rule: str
    label: str
    state: AlertState
    value: float | None
    peak: float | None
    threshold: float | None
    started_at: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    acked_by: str | None
    silenced_until: datetime | None = None
    acked_at: datetime | None = Field(default=None, exclude=True)
    server_id: int = Field(default=0, exclude=True)
    notify_error: str | None = Field(
        default=None, exclude=True
    )  # the last delivery that failed, not sent yet or given up


class SilenceRecord(BaseModel):
    id: int
    server: str
    rule: str | None
    until: datetime
    comment: str
    created_by: str
    created_at: datetime


def fingerprint(url: str) -> str:
    """What the store keeps to name a notify URL: the URL itself may hold a password."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]
