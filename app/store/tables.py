"""The SQL schema as SQLAlchemy 2 declarative classes.

The migrations in app/store/migrations create exactly these tables; a change here
needs a new revision there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fleettop.rollup import HOST_METRICS as ROLLUP_METRICS


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out.

    Postgres keeps them as timestamptz; SQLite has no time zones, so they are stored
    as naive UTC and made aware again when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the store; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime}


class ServerRow(Base):
    __tablename__ = "servers"
    __table_args__ = (UniqueConstraint("name", name="uq_servers_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=22)
    username: Mapped[str | None] = mapped_column(String(32))
    transport: Mapped[str] = mapped_column(String(16), default="ssh")
    auth: Mapped[str] = mapped_column(String(16), default="agent")
    key_file: Mapped[str | None] = mapped_column(Text)
    secret: Mapped[bytes | None] = mapped_column(LargeBinary)  # encrypted by fleettop.secrets
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # NULL: the server takes `defaults:` of the config in use (see Repository).
    interval: Mapped[int | None] = mapped_column(Integer)
    cpu_threshold: Mapped[float | None] = mapped_column(Float)
    ram_threshold: Mapped[float | None] = mapped_column(Float)
    disk_threshold: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16), default="db")  # config | db
    tags: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))  # NULL: none
    jump: Mapped[str | None] = mapped_column(Text)  # NULL: a group's, or the ssh config's ProxyJump
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


# SQLite only autoincrements an INTEGER PRIMARY KEY; Postgres needs 64 bits for years of samples.
BigId = BigInteger().with_variant(Integer, "sqlite")


class SampleRow(Base):
    __tablename__ = "samples"
    __table_args__ = (
        # Also the index for latest-per-server (max collected_at per server) and history ranges.
        UniqueConstraint("server_id", "collected_at", name="uq_samples_server_collected"),
        Index("ix_samples_collected_at", "collected_at"),  # purge and fleet-wide export
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"))
    collected_at: Mapped[datetime]
    cpu_percent: Mapped[float | None] = mapped_column(Float)
    mem_percent: Mapped[float] = mapped_column(Float)
    mem_used_bytes: Mapped[int] = mapped_column(BigInteger)
    mem_total_bytes: Mapped[int] = mapped_column(BigInteger)
    swap_percent: Mapped[float] = mapped_column(Float)
    swap_used_bytes: Mapped[int] = mapped_column(BigInteger)
    swap_total_bytes: Mapped[int] = mapped_column(BigInteger)
    disk_percent: Mapped[float | None] = mapped_column(Float)
    load1: Mapped[float] = mapped_column(Float)
    load5: Mapped[float] = mapped_column(Float)
    load15: Mapped[float] = mapped_column(Float)
    procs: Mapped[int] = mapped_column(Integer)
    uptime_s: Mapped[float] = mapped_column(Float)
    net_rx_bps: Mapped[float | None] = mapped_column(Float)
    net_tx_bps: Mapped[float | None] = mapped_column(Float)
    disks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    counters: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_status_finished", "status", "finished_at"),
        Index("ix_runs_server_started", "server_id", "started_at"),
        Index("ix_runs_job_key", "job_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"))
    job_key: Mapped[str] = mapped_column(String(255))
    trigger: Mapped[str] = mapped_column(String(16))  # scheduled | manual | retry
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16))  # running | ok | failed | retried (failed, retried after)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    duration_s: Mapped[float | None] = mapped_column(Float)


class AuditRow(Base):
    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(255))  # OS user@host
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))
    detail: Mapped[str] = mapped_column(Text, default="")


# The Core tables of the servers, samples and runs, for the statements that skip the ORM
# (executemany, RETURNING in bulk: store/group_commit.py), and their columns. cast: a mapped
# class's __table__ is typed as any FromClause.
SERVERS_TABLE = cast(Table, ServerRow.__table__)
SAMPLES_TABLE = cast(Table, SampleRow.__table__)
RUNS_TABLE = cast(Table, RunRow.__table__)
SERVER_COLUMNS = SERVERS_TABLE.c
SAMPLE_COLUMNS = SAMPLES_TABLE.c
RUN_COLUMNS = RUNS_TABLE.c


# -- rollups (fleettop.store.rollups writes and reads them; the bucket math is fleettop.rollup) --

STAT_FIELDS = ("n", "sum", "min", "max")


def _host_table(name: str) -> Table:
    return Table(
        name,
        Base.metadata,
        Column("server_id", Integer, ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True),
        Column("bucket", BigInteger, primary_key=True),  # epoch seconds of the bucket's start
        *(
            Column(f"{metric}_{field}", Integer if field == "n" else Float, nullable=field != "n")
            for metric in ROLLUP_METRICS
            for field in STAT_FIELDS
        ),
        Index(f"ix_{name}_bucket", "bucket"),  # retention purge
    )


def _disk_table(name: str) -> Table:
    return Table(
        name,
        Base.metadata,
        Column("server_id", Integer, ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True),
        Column("mount", Text, primary_key=True),
        Column("bucket", BigInteger, primary_key=True),
        Column("n", Integer, nullable=False),
        Column("sum", Float, nullable=False),
        Column("min", Float, nullable=False),
        Column("max", Float, nullable=False),
        Index(f"ix_{name}_bucket", "bucket"),
    )


ROLLUP_5M = _host_table("rollup_5m")
ROLLUP_1H = _host_table("rollup_1h")
DISK_5M = _disk_table("rollup_disk_5m")
DISK_1H = _disk_table("rollup_disk_1h")


_OPEN_ALERT = text("state <> 'resolved'")


class AlertHostRow(Base):
    """Per server, the last observation the alert rules judged (see migration 0004)."""

    __tablename__ = "alert_hosts"

    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True)
    evaluated_at: Mapped[datetime]


class AlertRow(Base):
    """One episode of one rule on one server: pending -> firing -> resolved (fleettop.alerting)."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index(
            "uq_alerts_open",
            "server_id",
            "rule",
            "label",
            unique=True,
            sqlite_where=_OPEN_ALERT,
            postgresql_where=_OPEN_ALERT,
        ),
        Index("ix_alerts_state_resolved", "state", "resolved_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float)
    peak: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    fired_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    notified_at: Mapped[datetime | None]
    acked_by: Mapped[str | None] = mapped_column(String(255))
    acked_at: Mapped[datetime | None]


class OutboxRow(Base):
    """A notification to deliver: one per event and URL (its fingerprint, never the URL)."""

    __tablename__ = "alert_outbox"
    __table_args__ = (
        UniqueConstraint("alert_id", "kind", "event_at", "target", name="uq_alert_outbox_event"),
        Index("ix_alert_outbox_due", "sent_at", "failed_at", "next_try_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # NULL once its alert is gone with its server: the message (rendered already) is still owed.
    alert_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("alerts.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))  # firing | resolved | reminder
    event_at: Mapped[datetime]
    target: Mapped[str] = mapped_column(String(16))
    line: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    next_try_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(36))
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]  # given up after its retries
    error: Mapped[str | None] = mapped_column(Text)


class SilenceRow(Base):
    __tablename__ = "silences"
    __table_args__ = (Index("ix_silences_until", "until"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"))
    rule: Mapped[str | None] = mapped_column(String(16))  # None: every rule
    until: Mapped[datetime]
    comment: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
