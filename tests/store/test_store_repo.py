"""The repository against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import inspect, text
from store_helpers import T0, add_server, latest_sample, metrics, start_run, store_sample

from fleettop.config import DefaultsConfig, ServerConfig
from fleettop.domain import CleanResult, Counters, Thresholds
from fleettop.errors import FleettopError
from fleettop.rollup import RAW, ReadPlan
from fleettop.store.db import head_revision, migrate, open_database
from fleettop.store.repo import KEEP, Repository

# -- migrations ----------------------------------------------------------------------


@pytest.mark.empty_database
async def test_migrations_create_every_table_at_head(database):
    assert await database.revision() == head_revision()
    async with database.engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        indexes = await conn.run_sync(lambda sync: {i["name"] for i in inspect(sync).get_indexes("runs")})
    assert {"servers", "samples", "runs", "audit", "alembic_version"} <= tables
    assert {"alerts", "alert_hosts", "alert_outbox", "silences"} <= tables
    assert {"rollup_5m", "rollup_1h", "rollup_disk_5m", "rollup_disk_1h"} <= tables
    assert {"ix_runs_status_finished", "ix_runs_server_started", "ix_runs_job_key"} <= indexes


@pytest.mark.empty_database
async def test_migrations_match_the_orm_tables(database):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from fleettop.store.tables import Base

    async with database.engine.connect() as conn:
        diff = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))
    assert diff == []


@pytest.mark.empty_database
async def test_0002_makes_the_stored_built_in_defaults_inherited_and_keeps_other_values(settings):
    """A database at 0001 (values stored, never NULL) upgrades in place: a value equal to the
    built-in default then follows `defaults:`, any other stays the server's own."""
    from alembic import command
    from sqlalchemy import insert, select

    from fleettop.store import db as store_db
    from fleettop.store.rows import sample_values
    from fleettop.store.tables import SampleRow, ServerRow

    def upgrade_to_0001(sync) -> None:
        alembic_config = store_db._alembic_config()
        alembic_config.attributes["connection"] = sync
        command.upgrade(alembic_config, "0001")

    database = await open_database(settings, migrate_to_head=False)
    try:
        now = datetime.now(UTC)
        row = {
            "port": 22,
            "transport": "ssh",
            "auth": "agent",
            "enabled": True,
            "source": "db",
            "created_at": now,
            "updated_at": now,
        }
        async with database.engine.begin() as conn:
            await conn.run_sync(upgrade_to_0001)
            await conn.execute(
                insert(ServerRow.__table__),
                [
                    {
                        **row,
                        "name": "web1",
                        "host": "h1",
                        "interval": 900,
                        "cpu_threshold": 90.0,
                        "ram_threshold": 95.0,
                        "disk_threshold": 90.0,
                    },
                    {
                        **row,
                        "name": "web2",
                        "host": "h2",
                        "interval": 60,
                        "cpu_threshold": 80.0,
                        "ram_threshold": 95.0,
                        "disk_threshold": 75.0,
                    },
                    {
                        **row,
                        "name": "localhost",
                        "host": "localhost",
                        "transport": "local",
                        "interval": 900,
                        "cpu_threshold": 90.0,
                        "ram_threshold": 95.0,
                        "disk_threshold": 90.0,
                    },
                ],
            )
            web1 = await conn.scalar(select(ServerRow.id).where(ServerRow.name == "web1"))
            # history stays (SQLite rebuilds the table); written as 0001 knew samples (no rollups yet)
            await conn.execute(insert(SampleRow.__table__), sample_values(web1, metrics(T0), None))
        await start_run(Repository(database), web1, job_key="k", trigger="manual")
        assert await database.revision() == "0001"
        await migrate(database)
        assert await database.revision() == head_revision()
        assert (
            await Repository(database).count_samples(web1) == 1
            and len(await Repository(database).recent_runs(web1)) == 1
        )
        if database.dialect == "sqlite":  # turned off for the rebuild only
            async with database.engine.connect() as conn:
                assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        async with database.engine.connect() as conn:
            stored = {
                r.name: tuple(r)[1:]
                for r in await conn.execute(
                    select(
                        ServerRow.name,
                        ServerRow.interval,
                        ServerRow.cpu_threshold,
                        ServerRow.ram_threshold,
                        ServerRow.disk_threshold,
                    )
                )
            }
        assert stored == {
            "web1": (None, None, None, None),
            "web2": (60, 80.0, None, 75.0),
            "localhost": (None, None, None, None),
        }
        repo = Repository(database, DefaultsConfig(interval=120, thresholds=Thresholds(ram=50)))
        servers = {s.name: s for s in await repo.list_servers()}
        assert (servers["web1"].interval, servers["web1"].thresholds) == (120, Thresholds(ram=50))
        assert (servers["web2"].interval, servers["web2"].thresholds) == (60, Thresholds(cpu=80, ram=50, disk=75))
        assert servers["localhost"].interval == 15  # a local server's default: defaults.local_interval
    finally:
        await database.close()


@pytest.mark.empty_database
async def test_reopening_and_migrating_again_is_a_no_op(settings, database, repo):
    await add_server(repo)
    await migrate(database)
    again = await open_database(settings)
    try:
        assert [s.name for s in await Repository(again).list_servers()] == ["web1"]
    finally:
        await again.close()


@pytest.mark.empty_database
async def test_a_migration_logs_one_line_of_its_own_not_alembics_narration(settings, caplog):
    caplog.set_level(logging.DEBUG)
    database = await open_database(settings)
    try:
        await migrate(database)  # at head already: says nothing
    finally:
        await database.close()
    lines = [(record.name, record.getMessage()) for record in caplog.records if record.levelno >= logging.INFO]
    assert [name for name, _ in lines if name.startswith("alembic")] == []
    assert [message for name, message in lines if name == "fleettop.store"] == [
        f"database schema upgraded to {head_revision()} ({database.url})"
    ]


@pytest.mark.empty_database
async def test_processes_starting_together_migrate_once(settings):
    """The TUI and a headless worker may open a fresh database at the same moment."""
    fresh = await open_database(settings, migrate_to_head=False)
    try:
        assert await fresh.revision() is None  # empty_database: no migration has run yet
    finally:
        await fresh.close()
    opened = await asyncio.gather(*(open_database(settings) for _ in range(4)), return_exceptions=True)
    try:
        assert [type(db).__name__ for db in opened] == ["Database"] * 4, opened
        assert {await db.revision() for db in opened} == {head_revision()}
    finally:
        for db in opened:
            if not isinstance(db, BaseException):
                await db.close()


async def test_sqlite_is_a_file_in_data_dir_in_wal_mode_with_foreign_keys(make_settings):
    settings = make_settings()
    database = await open_database(settings)
    try:
        assert (settings.data_dir / "fleettop.db").is_file()
        async with database.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 10_000
    finally:
        await database.close()


async def test_a_bad_database_url_is_one_line(make_settings):
    with pytest.raises(FleettopError, match="unsupported driver 'mysql'"):
        await open_database(make_settings(database={"url": "mysql://x@localhost/db"}))
    with pytest.raises(FleettopError, match="cannot open the database"):
        await open_database(make_settings(database={"url": "postgresql+asyncpg://nobody@127.0.0.1:1/none"}))


# -- servers -------------------------------------------------------------------------


async def test_add_get_list_servers(repo):
    cfg = ServerConfig(
        name="db1",
        host="db1.example.com",
        port=2222,
        username="ops",
        auth="key",
        key_file="/keys/id",
        interval=60,
        thresholds={"cpu": 70},
    )
    server = await repo.add_server(cfg, seal=lambda server_id: b"blob %d" % server_id)
    assert server.id > 0 and server.source == "db" and server.has_secret
    assert server.thresholds == Thresholds(cpu=70, ram=95, disk=90)  # the rest from defaults
    assert server.created_at.tzinfo is not None
    assert await repo.get_server("db1") == server
    assert await repo.get_server_by_id(server.id) == server
    assert await repo.get_secret(server.id) == b"blob %d" % server.id  # sealed with its own id
    await add_server(repo, "app1", enabled=False)
    assert [s.name for s in await repo.list_servers()] == ["app1", "db1"]
    assert [s.name for s in await repo.list_servers(enabled_only=True)] == ["db1"]
    assert await repo.get_server("nope") is None


async def test_add_server_twice_is_refused(repo):
    await add_server(repo, "web1")
    with pytest.raises(FleettopError, match="^server 'web1' already exists$"):
        await add_server(repo, "web1")


async def test_update_server_renames_and_keeps_or_replaces_the_secret(repo):
    await repo.add_server(ServerConfig(name="web1", host="10.0.0.1"), seal=lambda _: b"one")
    server = await repo.update_server("web1", ServerConfig(name="web2", host="10.0.0.2", interval=30), secret=KEEP)
    assert (server.name, server.host, server.interval) == ("web2", "10.0.0.2", 30)
    assert await repo.get_secret(server.id) == b"one"
    await repo.update_server("web2", ServerConfig(name="web2", host="h"), secret=None)
    assert await repo.get_secret(server.id) is None
    assert await repo.get_server("web1") is None
    with pytest.raises(FleettopError, match="no server named 'web9'"):
        await repo.update_server("web9", ServerConfig(name="web9", host="h"))
    await add_server(repo, "web3")
    with pytest.raises(FleettopError, match="server 'web3' already exists"):
        await repo.update_server("web2", ServerConfig(name="web3", host="h"))


async def test_remove_server_takes_its_samples_and_runs(repo):
    sid = await add_server(repo)
    await store_sample(repo, sid, metrics(T0))
    await start_run(repo, sid, job_key="k", trigger="manual")
    assert await repo.count_samples(sid) == 1
    assert await repo.remove_server("web1") is True
    assert await repo.remove_server("web1") is False
    assert await repo.count_samples(sid) == 0
    assert await repo.recent_runs(sid) == []


async def test_sync_config_servers_upserts_adopts_and_releases_but_never_deletes(repo):
    await add_server(repo, "cli1")  # added with the CLI
    await add_server(repo, "web1")  # added with the CLI, then written into the config file
    config_servers = [ServerConfig(name="web1", host="10.1.1.1"), ServerConfig(name="web2", host="10.1.1.2")]
    notes = await repo.sync_config_servers(config_servers)
    assert (
        len(notes) == 2 and any("'web2': added" in n for n in notes) and any("'web1': now defined" in n for n in notes)
    )
    by_name = {s.name: s for s in await repo.list_servers()}
    assert {n: s.source for n, s in by_name.items()} == {"cli1": "db", "web1": "config", "web2": "config"}
    assert by_name["web1"].host == "10.1.1.1"

    assert await repo.sync_config_servers(config_servers) == []  # nothing changed

    # web2 leaves the config file: kept, with its history, and now managed with the CLI.
    await store_sample(repo, by_name["web2"].id, metrics(T0))
    notes = await repo.sync_config_servers(config_servers[:1])
    assert notes == ["server 'web2': no longer in the config file: kept, now managed with `fleettop servers`"]
    web2 = await repo.get_server("web2")
    assert web2.source == "db" and await repo.count_samples(web2.id) == 1
    actions = [e.action for e in await repo.audit_entries()]
    assert actions.count("server.add") == 1 and "server.adopt" in actions and "server.release" in actions


async def test_a_server_that_sets_nothing_takes_the_defaults_in_use_at_every_read(repo, database):
    """D3: what a server leaves unset follows `defaults:` as it is now, not as it was when the
    server was added; a local server's interval is defaults.local_interval."""
    await repo.sync_config_servers([ServerConfig(name="web1", host="h")])
    await repo.add_server(ServerConfig(name="cli1", host="h", thresholds={"ram": 70}))
    await repo.add_server(ServerConfig(name="me", host="localhost", transport="local"))
    before = {s.name: s for s in await repo.list_servers()}
    assert (before["web1"].interval, before["me"].interval) == (900, 15)
    changed = Repository(database, DefaultsConfig(interval=60, local_interval=20, thresholds=Thresholds(cpu=50)))
    assert await changed.sync_config_servers([ServerConfig(name="web1", host="h")]) == []  # nothing stored changes
    after = {s.name: s for s in await changed.list_servers()}
    assert (after["web1"].interval, after["web1"].thresholds) == (60, Thresholds(cpu=50, ram=95, disk=90))
    assert after["web1"].inherited == ("interval", "cpu", "ram", "disk")
    assert (after["cli1"].thresholds, after["cli1"].inherited) == (
        Thresholds(cpu=50, ram=70, disk=90),
        ("interval", "cpu", "disk"),
    )
    assert after["me"].interval == 20


# -- samples -------------------------------------------------------------------------


async def test_a_sample_is_kept_once_per_collected_at_and_round_trips(repo):
    sid = await add_server(repo)
    counters = Counters(uptime_s=100.0, cpu_total=1000, cpu_idle=900, net_rx_bytes=5, net_tx_bytes=6)
    sample_metrics = metrics(T0.replace(microsecond=123456))
    assert await store_sample(repo, sid, sample_metrics, counters) is True
    assert await store_sample(repo, sid, sample_metrics, counters) is False
    assert await repo.count_samples(sid) == 1
    latest = await latest_sample(repo, sid)
    assert latest.collected_at == sample_metrics.collected_at and latest.collected_at.tzinfo is not None
    assert latest.model_dump(exclude={"server_id", "counters"}) == sample_metrics.model_dump()
    assert latest.counters == counters and latest.server_id == sid


async def test_timestamps_in_other_zones_are_stored_as_utc(repo):
    sid = await add_server(repo)
    paris = datetime(2026, 11, 1, 13, 0, tzinfo=ZoneInfo("Europe/Paris"))
    await store_sample(repo, sid, metrics(paris))
    assert await store_sample(repo, sid, metrics(T0)) is False  # 13:00 in Paris is 12:00 UTC
    assert (await latest_sample(repo, sid)).collected_at == T0


async def test_latest_samples_per_server(repo):
    a = await add_server(repo, "a")
    b = await add_server(repo, "b")
    await add_server(repo, "c")  # no samples
    for minute in range(5):
        await store_sample(repo, a, metrics(T0 + timedelta(minutes=minute), cpu=minute))
        await store_sample(repo, b, metrics(T0 - timedelta(minutes=minute), cpu=10 + minute))
    latest = await repo.latest_samples()
    assert set(latest) == {a, b}
    assert latest[a].cpu_percent == 4 and latest[a].collected_at == T0 + timedelta(minutes=4)
    assert latest[b].cpu_percent == 10 and latest[b].collected_at == T0


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


async def test_history_raw_is_the_samples_in_range(repo):
    sid = await add_server(repo)
    for minute in range(10):
        await store_sample(repo, sid, metrics(T0 + timedelta(minutes=minute), cpu=minute, ram=50 + minute))
    plan = ReadPlan(RAW, 60, _epoch(T0 + timedelta(minutes=2)), _epoch(T0 + timedelta(minutes=5)))
    cpu, ram = [await repo.history_points(sid, metric, plan) for metric in ("cpu", "ram")]
    assert [p.at for p in cpu] == [_epoch(T0 + timedelta(minutes=m)) for m in (2, 3, 4)]
    assert [(p.n, p.min, p.avg, p.max) for p in cpu] == [(1, 2, 2, 2), (1, 3, 3, 3), (1, 4, 4, 4)]
    assert [p.avg for p in ram] == [52, 53, 54]


async def test_history_raw_in_buckets_averages_and_extremes(repo):
    sid = await add_server(repo)
    # One sample every 2 minutes for an hour; cpu rises 0,1,2,...; disk missing on odd ones.
    for i in range(30):
        at = T0 + timedelta(minutes=2 * i, seconds=7)
        await store_sample(
            repo, sid, metrics(at, cpu=float(i), ram=40.0 + (i % 3), disk=None if i % 2 else 60.0 + i, load1=i / 10)
        )
    plan = ReadPlan(RAW, 600, _epoch(T0), _epoch(T0 + timedelta(hours=1)))
    cpu, ram, disk, load1 = [await repo.history_points(sid, m, plan) for m in ("cpu", "ram", "disk", "load1")]
    assert [p.at for p in cpu] == [_epoch(T0 + timedelta(minutes=10 * k)) for k in range(6)]
    assert all(p.n == 5 for p in cpu)
    assert (cpu[0].min, cpu[0].avg, cpu[0].max) == (0.0, pytest.approx(2.0), 4.0)  # samples 0..4
    assert (cpu[-1].avg, cpu[-1].max) == (pytest.approx(27.0), 29.0)  # samples 25..29
    assert ram[0].avg == pytest.approx((40 + 41 + 42 + 40 + 41) / 5) and ram[0].max == 42
    assert (disk[0].n, disk[0].avg, disk[0].max) == (3, pytest.approx((60 + 62 + 64) / 3), 64)  # NULLs ignored
    assert load1[0].avg == pytest.approx(0.2) and load1[0].max == pytest.approx(0.4)


async def test_purge_samples_older_than(repo):
    sid = await add_server(repo)
    for day in range(5):
        await store_sample(repo, sid, metrics(T0 - timedelta(days=day)))
    assert await repo.purge_samples(T0 - timedelta(days=2, hours=1)) == 2
    assert await repo.count_samples(sid) == 3
    assert await repo.purge_samples(T0 - timedelta(days=2, hours=1)) == 0


async def test_aggregate_counts_up_down_alerting_by_each_servers_thresholds(repo):
    strict = await add_server(repo, "strict", thresholds={"cpu": 50})
    relaxed = await add_server(repo, "relaxed")  # cpu threshold 90
    failing = await add_server(repo, "failing")
    await add_server(repo, "off", enabled=False)
    off = (await repo.get_server("off")).id
    await store_sample(repo, strict, metrics(T0, cpu=60, ram=10, disk=20))  # critical for its 50 %
    await store_sample(repo, relaxed, metrics(T0, cpu=60, ram=30, disk=40))
    await store_sample(repo, relaxed, metrics(T0 - timedelta(hours=1), cpu=99))  # old: not the latest
    await store_sample(repo, off, metrics(T0, cpu=100))
    for sid, statuses in ((strict, ["failed", "ok"]), (relaxed, ["ok"]), (failing, ["ok", "failed"]), (off, ["ok"])):
        for status in statuses:
            run_id = await start_run(repo, sid, job_key=f"{sid}-{status}", trigger="scheduled")
            await repo.finish_run(run_id, status, error="boom" if status == "failed" else None)
    await start_run(repo, failing, job_key="in-flight", trigger="manual")  # running: not finished
    aggregate = await repo.aggregate()
    assert (aggregate.total, aggregate.up, aggregate.down, aggregate.alerting) == (3, 2, 1, 1)
    assert aggregate.avg_cpu == pytest.approx(60) and aggregate.avg_ram == pytest.approx(20)
    assert aggregate.avg_disk == pytest.approx(30)


async def test_aggregate_of_an_empty_fleet(repo):
    aggregate = await repo.aggregate()
    assert aggregate.total == 0 and aggregate.avg_cpu is None


async def test_iter_samples_filters_and_orders(repo):
    a = await add_server(repo, "a")
    b = await add_server(repo, "b")
    for minute in range(6):
        await store_sample(repo, a, metrics(T0 + timedelta(minutes=minute), cpu=minute))
        await store_sample(repo, b, metrics(T0 + timedelta(minutes=minute, seconds=30), cpu=100 - minute))
    everything = [s async for s in repo.iter_samples()]
    assert len(everything) == 12
    assert [s.collected_at for s in everything] == sorted(s.collected_at for s in everything)
    only_b = [s async for s in repo.iter_samples("b", since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4))]
    assert [(s.server_id, s.cpu_percent) for s in only_b] == [(b, 98), (b, 97)]
    with pytest.raises(FleettopError, match="no server named 'zzz'"):
        [s async for s in repo.iter_samples("zzz")]


async def insert_samples(database, server_id: int, count: int) -> None:
    """Many samples at once, one second apart from T0 (bulk insert, for size tests)."""
    from fleettop.store.tables import SampleRow

    template = metrics(T0).model_dump(exclude={"disks", "collected_at"})
    disks = [d.model_dump() for d in metrics(T0).disks]
    for start in range(0, count, 5000):
        rows = [
            {
                **template,
                "server_id": server_id,
                "collected_at": T0 + timedelta(seconds=i),
                "cpu_percent": i % 100,
                "disks": disks,
                "counters": None,
            }
            for i in range(start, min(count, start + 5000))
        ]
        async with database.sessions.begin() as session:
            await session.execute(SampleRow.__table__.insert(), rows)


async def peak_memory(consume) -> int:
    tracemalloc.start()
    try:
        await consume()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# Ten of iter_samples' batches (EXPORT_BATCH, 1,000 rows). Streamed they take 4 % of the memory of
# holding them all (2 % with 20k); every raw row fetched at once, models built one by one, 40-46 %
# (alike with 5k, 10k or 20k): "< a fifth" tells the two apart at 10k as it did at 20k, in half the time.
STREAMED = 10_000


async def test_iter_samples_streams_in_flat_memory(repo, database):
    sid = await add_server(repo)
    await insert_samples(database, sid, STREAMED)
    kept = []

    async def keep_all():
        kept.extend([s async for s in repo.iter_samples()])

    async def count_only():
        count = 0
        async for sample in repo.iter_samples():
            assert sample.cpu_percent == count % 100
            count += 1
        assert count == STREAMED

    everything = await peak_memory(keep_all)
    assert len(kept) == STREAMED
    kept.clear()
    streaming = await peak_memory(count_only)
    # Loading every row at once, even without building models, would cost a good part of
    # `everything`; a cursor read in batches of 1,000 holds a small fraction of it.
    assert streaming < everything / 5, (streaming, everything)


# -- runs ----------------------------------------------------------------------------


async def test_runs_lifecycle(repo):
    sid = await add_server(repo)
    run_id = await start_run(repo, sid, job_key="collect:1:100", trigger="scheduled", attempt=1)
    (running,) = await repo.recent_runs(sid, 1)
    assert running.status == "running" and running.finished_at is None and running.server_name == "web1"
    await repo.finish_run(run_id, "failed", error="host unreachable")
    retry = await start_run(repo, sid, job_key="collect:1:100", trigger="retry", attempt=2)
    await repo.finish_run(retry, "ok")
    (last,) = await repo.recent_runs(sid, 1)
    assert (last.id, last.status, last.attempt, last.trigger) == (retry, "ok", 2, "retry")
    assert last.duration_s is not None and last.duration_s >= 0 and last.finished_at.tzinfo is not None
    assert [r.id for r in await repo.recent_runs(sid, 10)] == [retry, run_id]
    failed = await repo.failed_runs(10)
    assert [(r.id, r.error, r.server_name) for r in failed] == [(run_id, "host unreachable", "web1")]
    assert await repo.run_counts() == {"completed": 1, "failed": 1}
    assert (await repo.get_run(run_id)).status == "failed"
    with pytest.raises(ValueError):
        await repo.finish_run(run_id, "running")


async def _finished_run(database, sid: int, status: str, finished_at: datetime) -> None:
    from fleettop.store.tables import RunRow

    async with database.sessions.begin() as session:
        session.add(
            RunRow(
                server_id=sid,
                job_key=f"k{finished_at.timestamp()}",
                trigger="scheduled",
                attempt=1,
                status=status,
                started_at=finished_at,
                finished_at=finished_at,
                duration_s=0.0,
            )
        )


async def test_clean_runs_applies_age_and_keep_limits_per_status(repo, database):
    a = await add_server(repo, "a")
    b = await add_server(repo, "b")
    now = datetime.now(UTC)
    for i in range(10):  # a: 10 ok runs, one a minute, the newest first
        await _finished_run(database, a, "ok", now - timedelta(minutes=i))
    for i in range(4):  # b: 4 failed runs, hours ago
        await _finished_run(database, b, "failed", now - timedelta(hours=i + 1))
    running = await start_run(repo, a, job_key="live", trigger="manual")
    # ok: keep at most 3 and none older than 1 h; failed: keep 10, none older than 2.5 h.
    deleted = await repo.clean_runs(completed_max_age=3600, completed_keep=3, failed_max_age=9000, failed_keep=10)
    assert deleted == CleanResult(completed=7, failed=2)
    assert await repo.run_counts() == {"completed": 3, "failed": 2}
    assert (await repo.get_run(running)).status == "running"  # unfinished runs are never cleaned
    # Everything past its limits, yet each server's newest finished run stays: up/down needs it.
    await repo.clean_runs(completed_max_age=0, completed_keep=0, failed_max_age=0, failed_keep=0)
    assert await repo.run_counts() == {"completed": 1, "failed": 1}
    assert (await repo.aggregate()).down == 1


# -- audit ---------------------------------------------------------------------------


async def test_audit_records_who_did_what(repo):
    await repo.audit("server.add", "web1", "host 10.0.0.1")
    await repo.audit("server.remove", "web1")
    entries = await repo.audit_entries(10)
    assert [(e.action, e.target, e.detail) for e in entries] == [
        ("server.remove", "web1", ""),
        ("server.add", "web1", "host 10.0.0.1"),
    ]
    assert "@" in entries[0].actor and entries[0].at.tzinfo is not None
    assert len(await repo.audit_entries(1)) == 1


async def test_a_database_failure_mid_command_is_one_line(database, repo):
    from fleettop.store.db import reporting_errors

    async with database.engine.begin() as conn:
        await conn.execute(text("DROP TABLE audit"))
    with pytest.raises(FleettopError) as caught:
        async with reporting_errors(database):
            await repo.audit("x", "y")
    message = str(caught.value)
    assert message.startswith("database ") and "audit" in message and "\n" not in message


async def test_close_stale_runs_closes_only_old_running_runs(repo):
    server = await repo.add_server(ServerConfig(name="stale-1", host="127.0.0.1"))
    old = await start_run(repo, server.id, job_key="a", trigger="manual")
    done = await start_run(repo, server.id, job_key="b", trigger="manual")
    await repo.finish_run(done, "ok")
    cutoff = datetime.now(UTC) + timedelta(seconds=1)
    fresh = await start_run(repo, server.id, job_key="c", trigger="manual")
    # `fresh` started before the cutoff too; a cutoff in the past keeps it
    assert await repo.close_stale_runs(cutoff - timedelta(hours=1), "lost") == 0
    assert await repo.close_stale_runs(cutoff, "lost: its worker is gone") == 2
    runs = {run.id: run for run in await repo.recent_runs(server.id)}
    assert runs[old].status == "failed" and runs[old].error == "lost: its worker is gone" and runs[old].finished_at
    assert runs[done].status == "ok" and runs[fresh].status == "failed"


async def test_audit_takes_a_target_longer_than_its_column(repo):
    """`fleettop collect` of many servers by name audits them all: on PostgreSQL a target
    past VARCHAR(255) must not fail the command; the whole list stays in the detail."""
    names = ",".join(f"server-{n:03d}-" + "x" * 50 for n in range(20))
    await repo.audit("collect", names)
    entry = (await repo.audit_entries(1))[0]
    assert len(entry.target) == 255 and entry.target.endswith("…")
    assert entry.detail == names
