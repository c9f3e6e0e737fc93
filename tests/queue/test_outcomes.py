"""How `collect --wait` reports a collection whose server vanished under it."""

from __future__ import annotations

from queue_helpers import service_for


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
