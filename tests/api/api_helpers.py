"""Helpers of the HTTP API's tests: a `fleettop --headless --listen` process and a client for it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import yaml
from ports import free_port
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from queue_helpers import Fleettop, wait_until

TOKEN = "t0ken-for-the-tests-0123456789abcdef"
GRAFANA = "grafana-token-0123456789abcdef"
SEED = "/api/v1/servers/metrics"


@contextlib.asynccontextmanager
async def api_worker(
    short_dir: Path, data: dict[str, Any], *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, Fleettop]]:
    """`fleettop --headless --listen 127.0.0.1:<port>` on this config, and a client for it."""
    config = short_dir / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    port = free_port()
    worker = await Fleettop.start(config, "--headless", "--listen", f"127.0.0.1:{port}", *args, name="api", env=env)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

        async def answers() -> bool:
            if worker.process.returncode is not None:
                raise AssertionError(f"fleettop exited {worker.process.returncode}: {worker.text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                return (await client.get("/healthz")).status_code == 200
            return False

        try:
            await wait_until(answers, 30)
            yield client, worker
        finally:
            if worker.process.returncode is None:
                assert await worker.stop() == 0, worker.text()[-2000:]


def with_tokens(data: dict[str, Any], **api: Any) -> dict[str, Any]:
    return {**data, "api": {"token": TOKEN, "tokens": {"grafana": GRAFANA}, **api}}


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def metric_samples(text: str, openmetrics: bool = False) -> dict[tuple[str, str], float]:
    parse = parse_openmetrics if openmetrics else parse_text
    return {
        (sample.name, sample.labels.get("server", "")): sample.value
        for family in parse(text)
        for sample in family.samples
    }
