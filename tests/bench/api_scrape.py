"""The HTTP API with N servers: `python tests/bench/api_scrape.py [--servers 1000] [--repeats 30]`.

A service on SQLite (a scratch data_dir) and the shared Redis (a prefix of its own), N
servers with one sample each (3 mounts, counters) stored and cached as a collection leaves
them, the API served in this process on a loopback port as `--listen` serves it. Then, in
turn: GET /metrics (Prometheus text), GET /metrics (OpenMetrics), GET /api/v1/servers, with
httpx from the same loop (its cost is inside the figures), the first of each (cold: rows
read, lines formatted) apart from the rest (warm: what a scrape every few seconds costs).
Prints the median and min wall clock of each and the process CPU per request."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: store_helpers

from store_helpers import store_sample  # noqa: E402

from fleettop.config import ApiConfig, Listen, LoadedConfig, ServerConfig, Settings  # noqa: E402
from fleettop.domain import Counters, DiskUsage, Metrics, Sample

REDIS_URL = os.environ.get("FLEETTOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def metrics(i: int) -> Metrics:
    return Metrics(
        collected_at=datetime.now(UTC),
        cpu_percent=i % 100,
        mem_percent=40.0,
        mem_used_bytes=3 * 2**30,
        mem_total_bytes=8 * 2**30,
        swap_used_bytes=2**20,
        swap_total_bytes=2**30,
        disk_percent=50.0,
        disks=[
            DiskUsage(
                mount=mount,
                device="/dev/sda1",
                fstype="ext4",
                used_bytes=50 * 2**30,
                total_bytes=100 * 2**30,
                percent=50.0,
                avail_bytes=45 * 2**30,
            )
            for mount in ("/", "/var", "/home")
        ],
        load1=0.5,
        load5=0.4,
        load15=0.3,
        procs=200,
        uptime_s=86400.0,
    )


async def bench(count: int, repeats: int) -> None:
    from fleettop.api.server import bind_listener, serving
    from fleettop.wiring import open_service

    with tempfile.TemporaryDirectory(prefix="ft-bench-api-") as scratch:
        prefix = f"ftbench-{uuid.uuid4().hex[:8]}:"
        settings = Settings.model_validate({"data_dir": scratch, "redis": {"url": REDIS_URL, "prefix": prefix}})
        loaded = LoadedConfig(settings=settings, path=Path(scratch) / "none.yaml", exists=False)
        async with open_service(loaded, worker=False) as service:
            try:
                started = time.perf_counter()
                for i in range(count):
                    server = await service.repo.add_server(
                        ServerConfig(name=f"web-{i:04d}", host=f"10.0.{i // 250}.{i % 250 + 1}")
                    )
                    counters = Counters(
                        uptime_s=86400.0, cpu_total=10**6, cpu_idle=9 * 10**5, net_rx_bytes=10**9, net_tx_bytes=10**8
                    )
                    sample = metrics(i)
                    await store_sample(service.repo, server.id, sample, counters)
                    await service.cache.record_collected(
                        Sample(**dict(sample), server_id=server.id, counters=counters), duration_s=0.05
                    )
                await service.cache_server_list()
                print(f"{count} servers set up in {time.perf_counter() - started:.1f} s", file=sys.stderr)
                api = ApiConfig(token="bench-token-0123456789abcdef")
                sock = bind_listener(Listen("127.0.0.1", 0), api, "bench")
                async with serving(service, api, sock) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
                    headers = {"Authorization": f"Bearer {api.token}"}
                    cases = {
                        "/metrics (text)": ("/metrics", {}),
                        "/metrics (OpenMetrics)": (
                            "/metrics",
                            {"Accept": "application/openmetrics-text;version=1.0.0"},
                        ),
                        "/api/v1/servers": ("/api/v1/servers", {}),
                    }
                    print(f"| request, {count} servers | cold | warm median (min) | CPU per request | size |")
                    print("|---|---|---|---|---|")
                    for label, (path, extra) in cases.items():
                        walls = []
                        cpu = time.process_time()
                        for _ in range(repeats + 1):
                            began = time.perf_counter()
                            answer = await client.get(path, headers={**headers, **extra})
                            walls.append(time.perf_counter() - began)
                            assert answer.status_code == 200, answer.text[:200]
                        cpu = (time.process_time() - cpu) / (repeats + 1)
                        cold, warm = walls[0], walls[1:]
                        print(
                            f"| {label} | {cold * 1000:.1f} ms | {statistics.median(warm) * 1000:.1f} ms "
                            f"({min(warm) * 1000:.1f}) | {cpu * 1000:.1f} ms | {len(answer.content) / 1024:.0f} KiB |"
                        )
            finally:
                await service.cache.clear()
                await service.cache.redis.delete(
                    *[key async for key in service.cache.redis.scan_iter(match=prefix + "*")] or ["-"]
                )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(bench(args.servers, args.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
