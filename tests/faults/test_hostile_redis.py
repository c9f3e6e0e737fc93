"""A Redis writer is not trusted (security review findings 4 and 5): jobs written straight
into Redis collect nothing they should not, and audit entries relayed through Redis are
checked before they are recorded."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from queue_helpers import Fleettop, run_fleettop, service_for, wait_until
from redis.asyncio import Redis
from saq.job import Status
from saq.queue.redis import RedisQueue

from fleettop.cache import AuditRequest, Event
from fleettop.domain import actor

ESC = "\x1b"


async def _inject_job(redis_url: str, queue_name: str, key: str, **kwargs) -> RedisQueue:
    """What the review's inject_job.py does: a `collect` job written into the queue by a
    client that is no fleettop process (then a "queue" event, as anyone may publish)."""
    client = Redis.from_url(redis_url)
    queue = RedisQueue(client, name=queue_name)
    assert await queue.enqueue("collect", key=key, timeout=30, retries=3, **kwargs) is not None
    return queue


async def _finished(queue: RedisQueue, key: str):
    job = await queue.job(key)
    return job if job is not None and job.status in (Status.COMPLETE, Status.FAILED) else None


async def test_a_forged_job_never_collects_a_disabled_server_nor_stores_a_forged_trigger(make_config, fleet, redis_url):
    first, second = fleet.server_configs()[:2]
    data = make_config(servers=[], interval=3600, worker={"retries": 3})
    async with service_for(data, worker="manual") as service:
        await service.add_server(first)
        await service.add_server(second.model_copy(update={"enabled": False}))
        enabled, disabled = await service.resolve([first.name, second.name])
        manual = service.cache.queue_name("manual")
        forged = {
            "x-injected-disabled": {"server_id": disabled.id, "trigger": "manual"},
            "x-injected-scheduled": {"server_id": disabled.id, "trigger": "scheduled"},
            "x-injected-trigger": {"server_id": enabled.id, "trigger": "\x1b]0;PWN\x1b\\"},
            "x-injected-id": {"server_id": str(enabled.id), "trigger": "manual"},
        }
        queues = {key: await _inject_job(redis_url, manual, key, **kwargs) for key, kwargs in forged.items()}
        await service.cache.publish(Event(kind="queue"))
        jobs = {key: await wait_until(lambda: _finished(queue, key), 20) for key, queue in queues.items()}  # noqa: B023 -- awaited before the loop moves on
        for queue in queues.values():
            await queue.redis.aclose()

        assert fleet.host(second.name).connections_made == 0  # its password never left
        assert fleet.host(first.name).connections_made == 0
        assert jobs["x-injected-disabled"].result == {"status": "disabled"}
        assert jobs["x-injected-scheduled"].result == {"status": "disabled"}
        for key in ("x-injected-trigger", "x-injected-id"):
            job = jobs[key]
            assert job.status == Status.FAILED and job.attempts == 1, (key, job.status, job.attempts)  # not retried
            assert "RefusedJob: job refused" in job.error and ESC not in job.error.splitlines()[-1]
        assert await service.repo.recent_runs(enabled.id, 10) == []
        assert await service.repo.recent_runs(disabled.id, 10) == []

        # the same worker collects what fleettop itself asks for: the sim host counts the connection
        await service.collect_now([first.name])
        await service.wait_collected([enabled], timeout=30)
        assert (await service.manual_outcomes([enabled.id]))[0].status == "ok"
        assert fleet.host(first.name).connections_made == 1
        assert [run.trigger for run in await service.repo.recent_runs(enabled.id, 10)] == ["manual"]


async def test_collecting_a_disabled_server_by_name_is_refused(make_config, short_dir: Path, fleet):
    first, second = fleet.server_configs()[:2]
    data = make_config(servers=[])
    async with service_for(data, worker=False) as service:
        await service.add_server(first)
        await service.add_server(second.model_copy(update={"enabled": False}))
    config = short_dir / "config.yaml"
    refusal = f"fleettop: {second.name} is disabled: not collected (enable with: fleettop servers edit NAME --enable)\n"
    code, out, err = await run_fleettop(config, "collect", second.name, "--wait")
    assert (code, err) == (2, refusal), (code, out, err)
    headless = await Fleettop.start(config, "--headless", name="headless")  # then `collect` is attached to it
    try:
        async with service_for(data, worker=False) as service:
            await wait_until(service.workers_alive, 30)
        code, out, err = await run_fleettop(config, "collect", second.name)
        assert (code, err) == (2, refusal), (code, out, err)
    finally:
        assert await headless.stop() == 0, headless.text()[-2000:]
    assert fleet.host(second.name).connections_made == 0


# -- audit entries relayed through Redis (finding 4) ------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request) -> str | None:
    """None (SQLite in data_dir) or a fresh PostgreSQL database (which refuses a NUL in text)."""
    return request.getfixturevalue("pg_database_url") if request.param == "postgres" else None


def _entry(when: datetime, **fields) -> dict:
    return {
        "action": "server.remove",
        "target": "db-primary",
        "detail": "removed with 0 samples",
        "actor": "alice@admin-laptop",
        "at": when.isoformat(),
        **fields,
    }


async def _push(service, *entries) -> None:
    await service.cache.redis.rpush(service.cache.prefix + "audit", *(json.dumps(entry) for entry in entries))


async def _dead(service) -> list[dict]:
    return [json.loads(item) for item in await service.cache.redis.lrange(service.cache.prefix + "audit:dead", 0, -1)]


async def test_forged_and_malformed_audit_entries_are_dead_lettered_not_recorded(make_config, database_url):
    data = make_config(servers=["sim-0001"], **({"database": {"url": database_url}} if database_url else {}))
    async with service_for(data, worker=False) as service:
        now = datetime.now(timezone.utc)
        other_key = AuditRequest(**_entry(now))
        other_key.mac = other_key.digest(b"k" * 32)  # signed, but not with this fleet's secret key
        backdated = AuditRequest(**_entry(now - timedelta(days=30)), pid=1)
        backdated.mac = backdated.digest(service.cache.relay_key())
        with_nul = AuditRequest(**_entry(now, actor="bob@x", target="a\x00b"), pid=2)
        with_nul.mac = with_nul.digest(service.cache.relay_key())
        await _push(
            service,
            _entry(now),  # unsigned: the review's forgery
            _entry(now, mac="0" * 64),
            json.loads(other_key.model_dump_json()),
            json.loads(backdated.model_dump_json()),
            _entry(now, at="2020-01-01T00:00:00", action="x"),  # naive and unknown: stopped every start before
            _entry(now, action="server.remove\x00", mac="0" * 64),
            json.loads(with_nul.model_dump_json()),
        )
        assert await service.record_audit_requests() == 1
        await _push(service, json.loads(with_nul.model_dump_json()))  # a genuine entry, pushed again
        assert await service.record_audit_requests() == 0
        recorded = await service.repo.audit_entries(50)
        dead = await _dead(service)
    assert [(entry.actor, entry.target) for entry in recorded if entry.action == "server.remove"] == [("bob@x", "ab")]
    assert not any("alice" in entry.actor for entry in recorded)
    reasons = [item["reason"] for item in dead]
    assert len(reasons) == 7 and reasons[-1] == "recorded already (a copy pushed again)", reasons
    assert sum("bad or missing signature" in reason for reason in reasons) == 3, reasons
    assert sum("too far from now" in reason for reason in reasons) == 1, reasons
    assert sum(reason.startswith("malformed") for reason in reasons) == 2, reasons


async def test_a_malformed_audit_entry_stops_no_process_from_starting(make_config, short_dir: Path, fleet):
    """The review's reproduction: one entry with a naive date made every process that opens
    the database exit 1 at start, for good. Now each starts, and the entry is set aside."""
    data = make_config(servers=["sim-0001"], interval=3600)
    config = short_dir / "config.yaml"
    poison = _entry(
        datetime.now(timezone.utc), at="2020-01-01T00:00:00", action="x", target="y", detail="", actor="m@x"
    )
    async with service_for(data, worker=False) as service:
        await _push(service, poison)
        code, out, err = await run_fleettop(config, "queue", "pause")
        assert (code, out.strip()) == (0, "paused"), (code, out, err)
        code, out, err = await run_fleettop(config, "queue", "resume")
        assert code == 0, err

        await _push(service, poison)
        headless = await Fleettop.start(config, "--headless", name="headless")
        try:
            await wait_until(service.workers_alive, 30)
            await wait_until(lambda: _dead_count(service, 2), 10)  # its recorder set the entry aside
        finally:
            assert await headless.stop() == 0, headless.text()[-2000:]

        await _push(service, poison)
    async with service_for(data, worker=True) as dashboard_service:  # what the dashboard opens
        assert (await dashboard_service.health()).database is True
        dead = await _dead(dashboard_service)
    assert [item["reason"].split(":")[0] for item in dead] == ["malformed"] * 3, dead


async def test_an_entry_with_a_non_ascii_signature_costs_no_other_entry(make_config):
    """hmac.compare_digest raised TypeError on a non-ASCII str: the whole batch taken off the
    list was lost, neither recorded nor dead-lettered."""
    data = make_config(servers=["sim-0001"])
    async with service_for(data, worker=False) as service:
        now = datetime.now(timezone.utc)
        genuine = AuditRequest(**_entry(now, actor="bob@x"), pid=3)
        genuine.mac = genuine.digest(service.cache.relay_key())
        await _push(service, json.loads(genuine.model_dump_json()), _entry(now, mac="\u00e9" * 64))
        assert await service.record_audit_requests() == 1
        recorded = [(entry.actor, entry.action) for entry in await service.repo.audit_entries(50)]
        dead = await _dead(service)
    assert ("bob@x", "server.remove") in recorded
    assert len(dead) == 1 and "signature" in dead[0]["reason"], dead


async def _dead_count(service, count: int) -> bool:
    return len(await _dead(service)) >= count


async def test_an_attached_commands_audit_entry_is_recorded_as_its_own(make_config, short_dir: Path, fleet):
    data = make_config(servers=["sim-0001"], interval=3600, worker={"retries": 1})
    config = short_dir / "config.yaml"
    headless = await Fleettop.start(config, "--headless", name="headless")
    try:
        async with service_for(data, worker=False) as service:
            await wait_until(service.workers_alive, 30)
        code, out, err = await run_fleettop(config, "collect", "sim-0001")
        assert code == 0, err

        async def relayed():
            code, out, _ = await run_fleettop(config, "audit", "--json")
            return [entry for entry in json.loads(out) if entry["action"] == "collect"] if code == 0 else None

        (entry,) = await wait_until(relayed, 20, step=0.5)
    finally:
        assert await headless.stop() == 0, headless.text()[-2000:]
    assert entry["actor"] == actor() and entry["target"] == "sim-0001"
    assert entry["detail"].startswith("relayed through Redis by pid "), entry  # the attached path, not the full one
    assert "refused" not in headless.text()


def test_every_action_the_code_records_is_a_known_one():
    """AUDIT_ACTIONS is what a relayed entry may name: it must list each action recorded."""
    import re

    import fleettop
    from fleettop.domain import AUDIT_ACTIONS

    source = "".join(path.read_text() for path in Path(fleettop.__file__).parent.rglob("*.py"))
    used = set(re.findall(r"\.audit\(\s*\"([^\"]+)\"", source)) | set(
        re.findall(r"return \(\"(collect[.a-z]*)\",", source)
    )
    assert {"collect", "collect.all", "queue.pause", "server.add", "trust"} <= used  # the scan finds them
    assert used <= AUDIT_ACTIONS, used - AUDIT_ACTIONS
