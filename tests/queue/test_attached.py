"""`collect` and `queue stats` attached to a running worker: answered from Redis alone
(no database, no SQLAlchemy), the same answers as the full path, and the full path
taken on every miss."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from queue_helpers import Fleettop, service_for, wait_until
from redis.asyncio import Redis

from fleettop.cache import AuditRequest
from fleettop.cli import collect
from fleettop.config import Settings, servers_fingerprint
from fleettop.domain import actor

# cryptography is not among them: an attached `collect` signs its audit entry with a key
# derived from the secret key (fleettop.secrets, ~4 ms of imports); test_startup checks
# that nothing imports it before a command needs it.
HEAVY = ("sqlalchemy", "alembic", "asyncssh", "textual")

# Runs the CLI in a subprocess as `fleettop` does, then reports on stderr's last line
# which heavy modules that process imported.
_CLI = textwrap.dedent(
    """
    import json, sys
    from fleettop.cli import main
    try:
        code = main(sys.argv[1:])
    finally:
        heavy = sorted({name for name in sys.modules if name.startswith(%r)})
        print(json.dumps(heavy), file=sys.stderr)
    sys.exit(code)
    """
) % (HEAVY,)


async def cli(config: Path, *args: str) -> tuple[int, str, str, list[str]]:
    """(exit code, stdout, stderr without the report, heavy modules imported)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CLI,
        "--config",
        str(config),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=config.parent,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 90)
    *rest, report = stderr.decode().splitlines()
    return process.returncode, stdout.decode(), "\n".join(rest), json.loads(report)


def _sqlalchemy(heavy: list[str]) -> bool:
    return any(name.split(".")[0] == "sqlalchemy" for name in heavy)


@contextlib.asynccontextmanager
async def attached_worker(make_config, short_dir: Path, database_url: str | None = None):
    """A config of three sim hosts (one attempt per collection) and a headless worker on it."""
    data = make_config(
        servers=["sim-0001", "sim-0002", "sim-0003"], worker={"retries": 1, "concurrency": 5, "shutdown_grace": 2}
    )
    if database_url:
        data["database"] = {"url": database_url}
    config = short_dir / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    worker = await Fleettop.start(config, "--headless", name="headless")
    redis = Redis.from_url(data["redis"]["url"])
    try:
        await wait_until(lambda: redis.zcount(data["redis"]["prefix"] + "workers", "-inf", "+inf"), 30)
        yield data, config, worker, redis
    finally:
        await redis.aclose()
        if worker.process.returncode is None:
            assert await worker.stop() == 0, worker.text()[-2000:]


@pytest.fixture
async def headless(make_config, short_dir: Path, fleet):
    async with attached_worker(make_config, short_dir) as attached:
        yield attached


async def test_attached_collect_answers_from_redis_what_the_database_holds(
    database_url, make_config, short_dir: Path, fleet
):
    async with attached_worker(make_config, short_dir, database_url) as (data, config, _, _):
        await _answers_from_redis(data, config)


async def _answers_from_redis(data: dict, config: Path) -> None:
    await cli(config, "collect", "--all", "--wait")  # the worker opens its connections

    code, stdout, stderr, heavy = await cli(config, "collect", "--all", "--wait", "--json")

    assert code == 0, stderr
    assert heavy == [], heavy  # no database, no SSH, no Textual
    attached = json.loads(stdout)
    assert [result["server"] for result in attached] == ["sim-0001", "sim-0002", "sim-0003"]
    async with service_for(data, worker=False) as service:  # the same results, read from SQL
        servers = await service.resolve(["sim-0001", "sim-0002", "sim-0003"])
        outcomes = await service.manual_outcomes([server.id for server in servers])
        assert attached == [collect._result(server.name, outcome) for server, outcome in zip(servers, outcomes)]

        async def audited() -> bool:  # the audit entries, left in Redis, recorded by the worker
            return [entry.action for entry in await service.repo.audit_entries(5)].count("collect.all") >= 2

        await wait_until(audited, 10)
        entry = next(entry for entry in await service.repo.audit_entries(5) if entry.action == "collect.all")
        assert entry.target == "*" and entry.detail.startswith("3 servers; relayed through Redis by pid "), entry

    code, stdout, stderr, heavy = await cli(config, "collect", "sim-0002", "--wait")
    assert code == 0 and heavy == [] and stdout.startswith("sim-0002  ok  cpu "), (stdout, stderr)
    code, stdout, _, heavy = await cli(config, "collect", "--all")
    assert (code, stdout.strip(), heavy) == (0, "queued 3 of 3 servers", [])


async def test_each_miss_takes_the_full_path(headless, fleet):
    data, config, worker, redis = headless
    prefix = data["redis"]["prefix"]
    code, _, stderr, heavy = await cli(config, "collect", "--all", "--wait")
    assert code == 0 and heavy == [], stderr

    # The config changed since it was synced (a server added): the full path syncs it,
    # collects the new one, and stores the list for the next command.
    added = next(cfg for cfg in fleet.server_configs() if cfg.name == "sim-0004")
    data["servers"].append(
        {**added.model_dump(mode="json", exclude_none=True, exclude={"thresholds"}), "interval": 900}
    )
    config.write_text(yaml.safe_dump(data))
    code, stdout, stderr, heavy = await cli(config, "collect", "--all", "--wait")
    assert code == 0 and _sqlalchemy(heavy), stderr
    assert "sim-0004  ok  " in stdout
    code, stdout, _, heavy = await cli(config, "collect", "--all", "--wait")
    assert code == 0 and heavy == [] and stdout.count("  ok  ") == 4

    # A name the list does not hold: the full path's one-line error.
    code, _, stderr, heavy = await cli(config, "collect", "sim-0001", "nope", "--wait")
    assert (code, stderr.strip()) == (
        2,
        "fleettop: no server named 'nope' (see: fleettop servers list)",
    ) and _sqlalchemy(heavy)

    # The list gone (servers changed elsewhere, or expired).
    await redis.delete(prefix + "servers")
    code, stdout, _, heavy = await cli(config, "collect", "--all", "--wait")
    assert code == 0 and _sqlalchemy(heavy) and stdout.count("  ok  ") == 4

    # A collection that failed: its error comes from the run history, as the full path
    # gives it, and the exit code is 1.
    await fleet.stop("sim-0003")
    try:
        code, stdout, _, heavy = await cli(config, "collect", "--all", "--wait")
    finally:
        await fleet.start("sim-0003")
    assert code == 1 and _sqlalchemy(heavy)
    failed = [line for line in stdout.splitlines() if "  failed  " in line]
    assert (
        len(failed) == 1
        and failed[0].startswith("sim-0003  failed  ")
        and "sim-0003" in failed[0][len("sim-0003  failed  ") :]
    )

    # Paused: the same error, from Redis.
    await redis.set(prefix + "paused", "1")
    code, _, stderr, heavy = await cli(config, "collect", "--all", "--wait")
    await redis.delete(prefix + "paused")
    assert (code, stderr.strip(), heavy) == (1, "fleettop: the queue is paused: run `fleettop queue resume` first", [])

    # No worker: the command runs one of its own.
    assert await worker.stop() == 0
    code, stdout, _, heavy = await cli(config, "collect", "--all", "--wait")
    assert code == 0 and _sqlalchemy(heavy) and stdout.count("  ok  ") == 4


async def test_no_enabled_servers_from_the_list(headless):
    data, config, _, _ = headless
    for server in data["servers"]:
        server["enabled"] = False
    config.write_text(yaml.safe_dump(data))
    code, stdout, _, heavy = await cli(config, "collect", "--all", "--wait")
    assert (code, stdout.strip()) == (0, "no enabled servers") and _sqlalchemy(heavy)  # a new config: synced
    code, stdout, _, heavy = await cli(config, "collect", "--all", "--wait")
    assert (code, stdout.strip(), heavy) == (0, "no enabled servers", [])


async def test_queue_stats_attached_agrees_with_the_database(headless):
    data, config, _, _ = headless
    assert (await cli(config, "collect", "--all", "--wait"))[0] == 0
    code, stdout, _, heavy = await cli(config, "queue", "stats", "--json")
    assert code == 0 and _sqlalchemy(heavy)  # no counts cached yet: counted in SQL, then cached
    code, _, _, _ = await cli(config, "collect", "--all", "--wait")  # runs ending keep the counts up
    assert code == 0
    code, stdout, _, heavy = await cli(config, "queue", "stats", "--json")
    assert code == 0 and heavy == []
    async with service_for(data, worker=False) as service:
        assert json.loads(stdout) == (await service.stats()).model_dump()
    assert json.loads(stdout)["completed"] >= 6  # and the scheduled first round

    code, _, _, _ = await cli(config, "queue", "clean")  # runs deleted: the next stats count in SQL
    code, stdout, _, heavy = await cli(config, "queue", "stats")
    assert code == 0 and _sqlalchemy(heavy) and "completed" in stdout


def test_the_fingerprint_follows_the_servers_and_database_but_holds_no_password():
    base = {
        "database": {"url": "postgresql+asyncpg://fleet:Hunter2pw@db/fleet"},
        "servers": [{"name": "a", "host": "a.example"}],
    }
    fingerprint = servers_fingerprint(Settings.model_validate(base))
    same_but_password = {**base, "database": {"url": "postgresql+asyncpg://fleet:other@db/fleet"}}
    assert servers_fingerprint(Settings.model_validate(same_but_password)) == fingerprint
    for changed in (
        {**base, "servers": [{"name": "a", "host": "a.example", "port": 2222}]},
        {**base, "database": {"url": "postgresql+asyncpg://fleet:Hunter2pw@db/other"}},
        {**base, "defaults": {"interval": 60}},
    ):
        assert servers_fingerprint(Settings.model_validate(changed)) != fingerprint


async def test_audit_entries_left_in_redis_are_recorded_once_with_who_asked_and_when(make_config):
    data = make_config(servers=["sim-0001"])
    async with service_for(data, worker=False) as service:
        cache = service.cache
        asked = datetime.now(timezone.utc) - timedelta(minutes=5)
        elsewhere = AuditRequest(action="collect", target="sim-0001", actor="alice@bastion", at=asked, pid=4242)
        elsewhere.mac = elsewhere.digest(cache.relay_key())  # an attached command on another host, same secret key
        async with cache.redis.pipeline(transaction=False) as pipe:
            cache.request_audit(pipe, "collect.all", "*", "1 servers")
            pipe.rpush(cache.prefix + "audit", elsewhere.model_dump_json())
            await pipe.execute()

        assert await service.record_audit_requests() == 2
        assert await service.record_audit_requests() == 0  # taken off the list
        recorded = await service.repo.audit_entries(10)
    entries = [entry for entry in reversed(recorded) if entry.action.startswith("collect")]  # oldest first
    recorder = f"recorded by {actor()} pid {os.getpid()}"
    assert [(entry.actor, entry.action, entry.target, entry.detail) for entry in entries] == [
        ("alice@bastion", "collect", "sim-0001", f"relayed through Redis by pid 4242, {recorder}"),
        (actor(), "collect.all", "*", f"1 servers; relayed through Redis by pid {os.getpid()}, {recorder}"),
    ]
    assert entries[0].at == asked and entries[1].at > asked
