"""Manual collections: how `collect --wait` reports one whose server vanished, and how soon
one queued by another process starts."""

from __future__ import annotations

import asyncio

from queue_helpers import service_for
from store_helpers import start_run


async def test_a_server_removed_while_its_collection_waits_is_reported_failed(make_config, fleet):
    data = make_config(servers=["sim-0001", "sim-0002"])
    async with service_for(data, worker="manual") as service:
        servers = await service.resolve(["sim-0001", "sim-0002"])
        await service.pause()
        assert await service.collect_now() == 2
        # Removed in the database only, as a process that could not reach Redis does:
        # the queued job stays and finds no server when it runs.
        await service.repo.remove_server("sim-0002")
        await service.resume()
        await service.wait_collected(servers, timeout=20)

        kept, removed = await service.manual_outcomes([server.id for server in servers])
        assert kept.status == "ok" and kept.sample is not None
        assert removed.status == "failed" and removed.sample is None
        assert removed.error == "the server was removed before it was collected"


async def test_a_collection_queued_elsewhere_starts_without_waiting_for_the_poll(make_config, fleet, monkeypatch):
    """An idle worker looks at its queue every DEQUEUE_POLL_S; a "queue" event (another
    process queued jobs) makes it look at once. With the poll stretched to a minute, the
    collection still finishes in seconds."""
    from fleettop.queue import worker

    monkeypatch.setattr(worker, "DEQUEUE_POLL_S", 60.0)
    data = make_config(servers=["sim-0001"])
    async with service_for(data, worker="manual") as running, service_for(data, worker=False) as elsewhere:
        server = (await elsewhere.resolve(["sim-0001"]))[0]
        await asyncio.sleep(1)  # the worker has polled its empty queue and waits
        assert await elsewhere.collect_now(["sim-0001"]) == 1
        await elsewhere.wait_collected([server], timeout=10)
        assert (await elsewhere.manual_outcomes([server.id]))[0].status == "ok"
        assert await running.workers_alive() == 1


async def test_a_failed_manual_collection_tells_its_own_error_after_a_later_run_started(make_config, fleet, short_dir):
    """The server's last run may be a scheduled one that started since (still running): the
    manual collection's answer is its own attempt's error, not "collection failed"."""
    unknown = short_dir / "empty_known_hosts"
    unknown.write_text("")
    data = make_config(servers=["sim-0001"], ssh={"known_hosts": str(unknown)})
    async with service_for(data, worker="manual") as service:
        (server,) = await service.resolve(["sim-0001"])
        await service.collect_now()
        await service.wait_collected([server], timeout=20)
        await start_run(service.repo, server.id, job_key="scheduled-since", trigger="scheduled")

        (outcome,) = await service.manual_outcomes([server.id])
        assert outcome.status == "failed" and "host key unknown" in outcome.error, outcome
