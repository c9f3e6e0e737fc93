"""Between the tables and fleettop.domain: a row as a domain record, a config entry or a
sample as the values of a row, and the one INSERT of samples every write path shares.

Pure mapping (no session, no transaction): store/repo.py and store/group_commit.py read and
write with these. Nothing SQLAlchemy-typed leaves the store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects import sqlite

from fleettop.config import DefaultsConfig, GroupConfig, ServerConfig, from_groups
from fleettop.domain import Counters, DiskUsage, Metrics, Run, Sample, Server
from fleettop.store.tables import SAMPLES_TABLE, RunRow, ServerRow


def utcnow() -> datetime:
    return datetime.now(UTC)


# -- servers ----------------------------------------------------------------------


def apply_config(row: ServerRow, cfg: ServerConfig) -> None:
    """The server's own settings; what it leaves unset is stored NULL, to take `defaults:`."""
    row.host = cfg.host
    row.port = cfg.port
    row.username = cfg.username
    row.transport = cfg.transport
    row.auth = cfg.auth
    row.key_file = str(cfg.key_file) if cfg.key_file else None
    row.enabled = cfg.enabled
    row.interval = cfg.interval
    row.cpu_threshold = cfg.thresholds.cpu
    row.ram_threshold = cfg.thresholds.ram
    row.disk_threshold = cfg.thresholds.disk
    row.tags = list(cfg.tags) or None
    row.jump = cfg.jump


def settings_of(row: ServerRow) -> tuple[Any, ...]:
    """The settings a config entry sets, to tell whether applying one changed anything."""
    return (
        row.host,
        row.port,
        row.username,
        row.transport,
        row.auth,
        row.key_file,
        row.enabled,
        row.interval,
        row.cpu_threshold,
        row.ram_threshold,
        row.disk_threshold,
        tuple(row.tags or ()),
        row.jump,
    )


def server_of(row: ServerRow, defaults: DefaultsConfig, groups: Mapping[str, GroupConfig]) -> Server:
    """The server as stored, what it leaves unset (NULL) taken from its tags' groups, else from
    the defaults; a group with enabled: false disables it."""
    tags = tuple(row.tags or ())
    own = {"interval": row.interval, "cpu": row.cpu_threshold, "ram": row.ram_threshold, "disk": row.disk_threshold}
    grouped: dict[str, float | None] = {
        "interval": from_groups(groups, tags, lambda group: group.interval),
        **{key: from_groups(groups, tags, _threshold(key)) for key in ("cpu", "ram", "disk")},
    }
    values = {key: grouped[key] if value is None else value for key, value in own.items()}
    thresholds = {key: value for key, value in values.items() if key != "interval" and value is not None}
    disabled_by_group = row.enabled and from_groups(
        groups, tags, lambda group: True if group.enabled is False else None
    )
    return Server(
        id=row.id,
        name=row.name,
        host=row.host,
        port=row.port,
        username=row.username,
        transport=row.transport,
        auth=row.auth,
        key_file=row.key_file,
        has_secret=row.secret is not None,
        enabled=row.enabled and not disabled_by_group,
        interval=defaults.interval_for(row.transport) if values["interval"] is None else values["interval"],
        thresholds=defaults.thresholds.model_copy(update=thresholds),
        tags=tags,
        jump=row.jump,
        inherited=tuple(key for key, value in own.items() if value is None)
        + (("enabled",) if disabled_by_group else ()),
        source=row.source,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _threshold(key: str) -> Callable[[GroupConfig], float | None]:
    """A group's threshold `key` (cpu, ram or disk), None when it sets none."""
    return lambda group: getattr(group.thresholds, key)


# -- samples and runs ---------------------------------------------------------------


def sample_values(server_id: int, metrics: Metrics, counters: Counters | None) -> dict[str, Any]:
    values = metrics.model_dump(exclude={"disks"})
    if values["collected_at"].tzinfo is None:
        raise ValueError("Metrics.collected_at must be timezone-aware")
    values["server_id"] = server_id
    values["disks"] = [disk.model_dump() for disk in metrics.disks]
    values["counters"] = counters.model_dump() if counters else None
    return values


def sample_of(row: Any) -> Sample:
    fields = dict(row)
    fields.pop("id", None)
    fields["disks"] = [DiskUsage.model_validate(d) for d in fields["disks"] or []]
    fields["counters"] = Counters.model_validate(fields["counters"]) if fields["counters"] else None
    return Sample.model_validate(fields)


def run_of(row: RunRow, server_name: str) -> Run:
    return Run(
        id=row.id,
        server_id=row.server_id,
        server_name=server_name,
        job_key=row.job_key,
        trigger=row.trigger,
        attempt=row.attempt,
        status=row.status,
        error=row.error,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_s=row.duration_s,
    )


def insert_samples(dialect: str) -> Any:
    """INSERT of samples that keeps one per server and collected_at (the first)."""
    insert_ = _postgresql().insert if dialect == "postgresql" else sqlite.insert
    return insert_(SAMPLES_TABLE).on_conflict_do_nothing(index_elements=["server_id", "collected_at"])


def _postgresql() -> Any:
    """SQLAlchemy's PostgreSQL dialect, imported when used (~25 ms a SQLite user never pays)."""
    from sqlalchemy.dialects import postgresql

    return postgresql
