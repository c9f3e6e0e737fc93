"""The API as a guest in the worker's event loop: the host's signal handlers and logging stay
as they were, and what it serves follows the collections without asking SQL for each request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from typing import Any

import httpx
import pytest
from queue_helpers import service_for, wait_until

from fleettop.config import ApiConfig, Listen

pytestmark = pytest.mark.slow


def listener(api: ApiConfig) -> socket.socket:
    from fleettop.api.server import bind_listener

    return bind_listener(Listen("127.0.0.1", 0), api, "test")


async def test_serving_leaves_signal_handlers_and_logging_alone(make_config):
    from fleettop.api.server import serving

    data = make_config(interval=3600)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopped.set)  # as `fleettop --headless` does
    root = logging.getLogger()
    before = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT), list(root.handlers), root.level)
    try:
        async with service_for(data, worker=True) as service:
            api = ApiConfig(metrics_public=True)
            async with serving(service, api, listener(api)) as url, httpx.AsyncClient(base_url=url) as client:
                assert (await client.get("/healthz")).status_code == 200
                now = (
                    signal.getsignal(signal.SIGTERM),
                    signal.getsignal(signal.SIGINT),
                    list(root.handlers),
                    root.level,
                )
                assert now == before  # uvicorn's capture_signals and dictConfig kept out
                assert not logging.getLogger("uvicorn.error").handlers  # its records go through ours
                signal.raise_signal(signal.SIGTERM)
                await asyncio.wait_for(stopped.wait(), 5)  # the host hears it, while the API still serves
                assert (await client.get("/healthz")).status_code == 200
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def test_rows_follow_each_collection(make_config, fleet):
    from fleettop.api.server import serving

    data = make_config(interval=3600)
    async with service_for(data, worker="manual") as service:
        api = ApiConfig()
        async with serving(service, api, listener(api)) as url, httpx.AsyncClient(base_url=url) as client:
            rows = (await client.get("/api/v1/servers")).json()
            assert {row["status"] for row in rows} == {"unknown"}
            await service.collect_now(["sim-0001"])

            async def collected() -> dict[str, Any] | None:
                found = {row["server"]["name"]: row for row in (await client.get("/api/v1/servers")).json()}
                return found if found["sim-0001"]["status"] == "up" else None

            found = await wait_until(collected, 20)
            assert found["sim-0002"]["status"] == "unknown"  # only what changed was read again
            assert found["sim-0001"]["latest"]["load1"] >= 0
            metrics = (await client.get("/metrics")).text
            assert 'fleettop_up{server="sim-0001"} 1' in metrics and 'fleettop_up{server="sim-0002"} 0' in metrics


async def test_the_dashboard_serves_the_api_beside_its_worker(make_config, short_dir):
    """`fleettop --listen`: the dashboard's own worker collects, and the API answers from it."""
    import argparse

    from ports import free_port

    from fleettop import config
    from fleettop.tui.app import dashboard_app

    make_config(interval=3600)
    loaded = config.load(short_dir / "config.yaml", environ={})
    port = free_port()
    app = dashboard_app(argparse.Namespace(no_worker=False, demo=None, listen=Listen("127.0.0.1", port)), loaded)
    async with app.run_test(size=(120, 30)), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

        async def answers() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return (await client.get("/healthz")).json()["worker"] == "running"
            return False

        await wait_until(answers, 30)
        assert (await client.post("/api/v1/servers/metrics/collect-all")).json() == {"queued": 4, "servers": 4}

        async def collected() -> bool:
            return {row["status"] for row in (await client.get("/api/v1/servers")).json()} == {"up"}

        await wait_until(collected, 30)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as after:
        with pytest.raises(httpx.ConnectError):  # gone with the dashboard
            await after.get("/healthz")
