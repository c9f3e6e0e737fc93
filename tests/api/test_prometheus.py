"""A real Prometheus (Debian's `prometheus` package; .ci/run installs it) scraping a real
`fleettop --headless --listen` on loopback, with a bearer token: its own HTTP API says the
target is up and returns fleettop_up and node_load1 for every server; `promtool check
metrics` passes on the exposition."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from api_helpers import TOKEN, api_worker, bearer
from ports import free_port
from queue_helpers import wait_until

pytestmark = pytest.mark.slow

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed (apt-get install prometheus)"
        if IN_CI:
            pytest.fail(message + " (CI=true: a missing tool fails the run)")
        pytest.skip(message)
    return found


async def test_prometheus_scrapes_every_server(make_config, short_dir: Path, fleet):
    prometheus, promtool = tool("prometheus"), tool("promtool")
    data = {**make_config(interval=10), "api": {"token": TOKEN}}
    names = sorted(cfg.name for cfg in fleet.server_configs())
    async with api_worker(short_dir, data) as (client, _):
        exposition = await client.get("/metrics", headers=bearer())
        checked = subprocess.run(
            [promtool, "check", "metrics"], input=exposition.content, capture_output=True, timeout=30
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr

        target = str(client.base_url).removeprefix("http://").rstrip("/")
        (short_dir / "token").write_text(TOKEN)
        (short_dir / "prometheus.yml").write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": "fleettop",
                            "authorization": {"credentials_file": str(short_dir / "token")},
                            "static_configs": [{"targets": [target]}],
                        }
                    ],
                }
            )
        )
        port = free_port()
        log = (short_dir / "prometheus.log").open("wb")
        server = subprocess.Popen(
            [
                prometheus,
                f"--config.file={short_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={short_dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as prom:

                async def target_up() -> bool:
                    with contextlib.suppress(httpx.TransportError):
                        response = await prom.get("/api/v1/targets")
                        if response.status_code != 200:  # "Service Unavailable" (text) while it starts
                            return False
                        targets = response.json()["data"]["activeTargets"]
                        return bool(targets) and targets[0]["health"] == "up"
                    return False

                async def servers_in(query: str) -> list[str]:
                    result = (await prom.get("/api/v1/query", params={"query": query})).json()["data"]["result"]
                    return sorted(series["metric"]["server"] for series in result)

                async def collected_everywhere() -> bool:
                    return await servers_in("fleettop_up == 1") == names and await servers_in("node_load1") == names

                await wait_until(target_up, 60, step=0.5)
                await wait_until(collected_everywhere, 60, step=0.5)
                assert await servers_in("node_memory_MemAvailable_bytes > 0") == names
                assert await servers_in('node_filesystem_avail_bytes{mountpoint="/"} > 0') == names
        finally:
            server.terminate()
            server.wait(30)
            log.close()
