"""Redis killed under `fleettop --headless --listen`: the API answers 503 with one line saying
so (never a traceback, in the answer or the log), /healthz says which part is down, and all
of it answers again once Redis is back. A private redis-server: the shared one is never stopped."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import pytest
import yaml
from ports import free_port
from queue_helpers import Fleettop, wait_until

pytestmark = pytest.mark.slow

TOKEN = "outage-token-0123456789abcdef"


async def test_redis_down_is_a_503_not_a_traceback(make_config, short_dir: Path, private_redis):
    data = make_config(interval=3600, redis={"url": private_redis.url}, api={"token": TOKEN})
    config = short_dir / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    port = free_port()
    worker = await Fleettop.start(config, "--headless", "--listen", f"127.0.0.1:{port}", name="api-outage")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    paths = ["/metrics", "/api/v1/servers", "/api/v1/servers/metrics/queue/stats", "/api/v1/servers/metrics/aggregate"]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10, headers=auth) as client:

            async def answering(status: int) -> bool:
                with contextlib.suppress(httpx.TransportError):
                    return all([(await client.get(path)).status_code == status for path in paths])
                return False

            await wait_until(lambda: answering(200), 30)
            private_redis.stop()
            await wait_until(lambda: answering(503), 20)
            for path in paths:
                answer = await client.get(path)
                error = answer.json()["error"]
                assert error.startswith("redis: ") and "\n" not in error, (path, error)
            collect = await client.post("/api/v1/servers/metrics/collect-all")
            assert collect.status_code == 503 and collect.json()["error"].startswith("redis: ")
            health = await client.get("/healthz")
            assert health.status_code == 503 and health.json() == {
                "redis": False,
                "database": True,
                "worker": "unknown",
            }
            assert worker.process.returncode is None

            private_redis.start()  # empty, as a crashed Redis comes back
            await wait_until(lambda: answering(200), 30)
    finally:
        code = await worker.stop()
    log = worker.text()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]
