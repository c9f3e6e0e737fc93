"""The HTTP API as its users meet it: a real `fleettop --headless --listen` process on a
loopback port, with real Redis, SQLite or PostgreSQL and simulated SSH hosts, asked with httpx."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_helpers import GRAFANA, SEED, TOKEN, api_worker, bearer, metric_samples, with_tokens
from queue_helpers import run_fleettop, service_for, wait_until

from fleettop.timing import scaled

pytestmark = pytest.mark.slow


async def test_every_endpoint_with_the_seeds_shapes(database_url, make_config, short_dir: Path, fleet):
    data = with_tokens(make_config(interval=3600))
    if database_url:
        data["database"] = {"url": database_url}
    names = sorted(cfg.name for cfg in fleet.server_configs())
    async with api_worker(short_dir, data) as (client, worker):
        health = await client.get("/healthz")  # open, no token
        assert health.json() == {"redis": True, "database": True, "worker": "running"}

        collected = await client.post(f"{SEED}/collect-all", headers=bearer("grafana-token-0123456789abcdef"))
        assert collected.status_code == 200 and collected.json() == {"queued": 4, "servers": 4}

        async def all_up() -> list[dict[str, Any]] | None:
            rows = (await client.get("/api/v1/servers", headers=bearer())).json()
            return rows if [row["status"] for row in rows] == ["up"] * 4 else None

        rows = await wait_until(all_up, 30)
        assert [row["server"]["name"] for row in rows] == names
        assert rows[0]["latest"]["mem_total_bytes"] > 0 and rows[0]["last_duration_s"] > 0

        stats = (await client.get(f"{SEED}/queue/stats", headers=bearer())).json()
        assert set(stats) == {"waiting", "active", "completed", "failed", "delayed", "scheduled", "paused", "workers"}
        assert stats["completed"] >= 4 and stats["paused"] is False
        assert [worker["scheduling"] for worker in stats["workers"]] == [True]  # the one serving the API

        assert (await client.post(f"{SEED}/queue/pause", headers=bearer())).json() == {"message": "collection paused"}
        assert (await client.get(f"{SEED}/queue/stats", headers=bearer())).json()["paused"] is True
        code, stdout, _ = await run_fleettop(short_dir / "config.yaml", "queue", "stats", "--json")
        assert code == 0 and '"paused": true' in stdout  # the same flag every worker and the CLI see
        assert (await client.post(f"{SEED}/queue/resume", headers=bearer())).json() == {"message": "collection resumed"}
        cleaned = await client.post(f"{SEED}/queue/clean", headers=bearer())
        assert cleaned.status_code == 200 and set(cleaned.json()) == {"completedCleaned", "failedCleaned"}

        aggregate = (await client.get(f"{SEED}/aggregate", headers=bearer())).json()
        assert aggregate["total"] == 4 and aggregate["up"] == 4 and aggregate["avg_cpu"] is not None

        detail = (await client.get(f"/api/v1/servers/{names[0]}", headers=bearer())).json()
        assert detail["row"]["server"]["name"] == names[0] and detail["runs"][0]["status"] == "ok"
        one = await client.post(f"/api/v1/servers/{names[1]}/collect", headers=bearer())
        assert one.json() == {"queued": 1, "servers": 1}
        history = (
            await client.get(f"/api/v1/servers/{names[0]}/metrics", params={"since": "1h"}, headers=bearer())
        ).json()
        assert history["server"] == names[0] and history["tier"] == "raw"
        assert [one["metric"] for one in history["series"]] == [
            "cpu",
            "ram",
            "swap",
            "disk",
            "load1",
            "net_rx",
            "net_tx",
        ]
        cpu = history["series"][0]["points"]
        assert len(cpu) >= 1 and cpu[0]["n"] >= 1 and 0 <= cpu[0]["avg"] <= 100
        code, stdout, _ = await run_fleettop(short_dir / "config.yaml", "history", names[0], "--since", "1h", "--json")
        assert code == 0 and json.loads(stdout)["series"] == history["series"]  # as `fleettop history --json`
        bucketed = await client.get(
            f"/api/v1/servers/{names[0]}/metrics",
            params={"since": "2h", "until": "0s", "step": "10m", "metric": ["ram", "disk:/"]},
            headers=bearer(),
        )
        assert bucketed.status_code == 200 and bucketed.json()["step"] == 600
        assert [one["metric"] for one in bucketed.json()["series"]] == ["ram", "disk:/"]

        scraped = await client.get("/metrics", headers=bearer())
        assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
        found = metric_samples(scraped.text)
        for name in names:
            assert found[("fleettop_up", name)] == 1
            assert found[("node_load1", name)] >= 0 and found[("node_memory_MemTotal_bytes", name)] > 0
            assert time.time() - found[("fleettop_last_collect_timestamp_seconds", name)] < 120
        openmetrics = await client.get(
            "/metrics", headers={**bearer(), "Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"}
        )
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
        assert metric_samples(openmetrics.text, openmetrics=True)[("fleettop_up", names[0])] == 1

        spec = (await client.get("/openapi.json")).json()
        assert f"{SEED}/collect-all" in spec["paths"] and "/api/v1/servers/{name}/metrics" in spec["paths"]

    async with service_for(data, worker=False) as service:  # audited under the tokens' names
        entries = {(entry.action, entry.actor.split("@")[0]) for entry in await service.repo.audit_entries(20)}
    assert {
        ("collect.all", "api:grafana"),
        ("queue.pause", "api:api"),
        ("queue.resume", "api:api"),
        ("queue.clean", "api:api"),
        ("collect", "api:api"),
    } <= entries


async def test_wrong_input_is_a_json_error_with_its_status(make_config, short_dir: Path):
    data = with_tokens(make_config(interval=3600))
    async with api_worker(short_dir, data) as (client, _):
        missing = await client.get("/api/v1/servers")
        assert missing.status_code == 401 and missing.json() == {"error": "a bearer token is required"}
        assert missing.headers["www-authenticate"] == 'Bearer realm="fleettop"'
        for wrong in (TOKEN[:-1], TOKEN + "x", GRAFANA.upper(), "Bearer"):
            answer = await client.post(f"{SEED}/queue/pause", headers=bearer(wrong))
            assert answer.status_code == 401, wrong
            assert "error" in answer.json() and "www-authenticate" in answer.headers
        assert (await client.get(f"{SEED}/queue/stats", headers=bearer())).json()["paused"] is False  # nothing paused
        assert (await client.get("/metrics")).status_code == 401  # not public unless api.metrics_public

        unknown = await client.get("/api/v1/servers/nosuch", headers=bearer())
        assert unknown.status_code == 404 and unknown.json() == {
            "error": "no server named 'nosuch' (see: fleettop servers list)"
        }
        assert (await client.post("/api/v1/servers/nosuch/collect", headers=bearer())).status_code == 404
        assert (await client.get("/api/v1/servers/nosuch/metrics", headers=bearer())).status_code == 404
        bad_time = await client.get("/api/v1/servers/sim-0001/metrics", params={"since": "yesterday"}, headers=bearer())
        assert bad_time.status_code == 400 and "since 'yesterday'" in bad_time.json()["error"]
        backwards = await client.get(
            "/api/v1/servers/sim-0001/metrics", params={"since": "1h", "until": "2h"}, headers=bearer()
        )
        assert backwards.status_code == 400 and backwards.json() == {"error": "since must be before until"}
        too_fine = await client.get(
            "/api/v1/servers/sim-0001/metrics", params={"since": "30d", "step": "1s"}, headers=bearer()
        )
        assert too_fine.status_code == 400 and "larger step" in too_fine.json()["error"]
        too_old = await client.get("/api/v1/servers/sim-0001/metrics", params={"since": "10000000w"}, headers=bearer())
        assert too_old.status_code == 400 and too_old.json() == {
            "error": "since '10000000w': reaches back before the year 1"
        }
        bad_metric = await client.get("/api/v1/servers/sim-0001/metrics", params={"metric": "temp"}, headers=bearer())
        assert bad_metric.status_code == 400 and bad_metric.json()["error"].startswith("metric 'temp': one of cpu")
        bad_step = await client.get("/api/v1/servers/sim-0001/metrics", params={"step": "x"}, headers=bearer())
        assert bad_step.status_code == 400 and bad_step.json()["error"].startswith("step: ")

        oversize = await client.post(f"{SEED}/queue/pause", headers=bearer(), content=b"x" * (64 * 1024 + 1))
        assert oversize.status_code == 413 and oversize.json() == {"error": "request body over 65536 bytes"}

        async def endless() -> AsyncIterator[bytes]:
            yield b"x" * 1024

        chunked = await client.post(f"{SEED}/queue/pause", headers=bearer(), content=endless())
        assert chunked.status_code == 411 and "error" in chunked.json()
        assert (await client.get(f"{SEED}/queue/stats", headers=bearer())).json()["paused"] is False

        assert (await client.get("/nothing/here")).json() == {"error": "no such path"}
        assert (await client.delete("/api/v1/servers", headers=bearer())).status_code == 405


async def test_metrics_public_and_the_token_from_the_environment(make_config, short_dir: Path):
    data = {**make_config(interval=3600), "api": {"metrics_public": True}}
    async with api_worker(short_dir, data, env={"FLEETTOP_API__TOKEN": TOKEN}) as (client, _):
        assert (await client.get("/metrics")).status_code == 200  # Prometheus without a token
        assert (await client.get("/api/v1/servers")).status_code == 401  # the rest still needs it
        assert (await client.get("/api/v1/servers", headers=bearer())).status_code == 200


async def test_the_worker_keeps_collecting_while_the_api_serves(make_config, short_dir: Path, fleet):
    """Scraped and listed without pause for several intervals: every server is still collected
    at each of its slots, and every answer is a 200."""
    interval = 10  # the shortest an interval may be; scaled(10) seconds in the tests
    data = with_tokens(make_config(interval=interval))
    async with api_worker(short_dir, data) as (client, _):
        names = sorted(cfg.name for cfg in fleet.server_configs())

        async def collected_at() -> dict[str, float]:
            found = metric_samples((await client.get("/metrics", headers=bearer())).text)
            return {name: found.get(("fleettop_last_collect_timestamp_seconds", name), 0.0) for name in names}

        async def all_collected() -> bool:
            return all(at > 0 for at in (await collected_at()).values())

        await wait_until(all_collected, 30)
        first = await collected_at()
        statuses: list[int] = []
        stop = time.monotonic() + 3 * scaled(interval)
        while time.monotonic() < stop:  # as fast as one client can ask
            for path in ("/metrics", "/api/v1/servers", f"{SEED}/queue/stats"):
                statuses.append((await client.get(path, headers=bearer())).status_code)
        last = await collected_at()
        assert set(statuses) == {200} and len(statuses) > 30, (len(statuses), set(statuses))
        # Each server collected again in the meantime: at least twice its interval later.
        advanced = {name: last[name] - first[name] for name in names}
        assert all(value >= 2 * scaled(interval) - 1 for value in advanced.values()), advanced


async def test_a_port_in_use_is_one_line_and_exit_2(make_config, short_dir: Path):
    config = short_dir / "config.yaml"
    config.write_text(yaml.safe_dump(make_config()))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, stdout, stderr = await run_fleettop(config, "--headless", "--listen", f"127.0.0.1:{port}")
    assert code == 2, (stdout, stderr)
    assert stderr.strip().splitlines() == [
        f"fleettop: --listen: cannot listen on 127.0.0.1:{port}: address already in use (another process listens there)"
    ]
    assert "worker" not in stdout  # refused before anything started


async def test_refused_before_start_in_one_line(make_config, short_dir: Path):
    config = short_dir / "config.yaml"
    config.write_text(yaml.safe_dump({**make_config(), "api": {"listen": "0.0.0.0:9105"}}))
    code, _, stderr = await run_fleettop(config, "--headless")
    assert code == 2
    assert stderr.strip().splitlines() == [
        f"fleettop: {config}:{_line_of(config, 'listen:')}: api.listen: 0.0.0.0:9105 is not a loopback address: "
        "set api.token (or FLEETTOP_API__TOKEN) before serving it"
    ]
    for args, said in (
        (["--headless", "--listen", "9105"], "argument --listen: must be HOST:PORT"),
        (["--headless", "--listen", "::1:9105"], "argument --listen: an IPv6 address is written in brackets"),
        (["--headless", "--listen", "host;rm -rf /:80"], "argument --listen: is not a valid host name"),
        (
            ["--listen", "127.0.0.1:9105", "queue", "stats"],
            "--listen serves the API from `fleettop` or `fleettop --headless`",
        ),
    ):
        code, _, stderr = await run_fleettop(config, *args)
        last = stderr.strip().splitlines()[-1]  # after argparse's usage lines
        assert code == 2 and said in last and "Traceback" not in stderr, (args, stderr)
    config.write_text(yaml.safe_dump({**make_config(), "api": {"token": "short"}}))
    code, _, stderr = await run_fleettop(config, "--headless")
    assert (
        code == 2
        and "api.token: must be at least 16 printable ASCII characters" in stderr
        and "short" not in stderr.split("api.token")[1]
    )


def _line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


async def test_alerts_as_the_cli_lists_them(make_config, short_dir: Path, fleet):
    """GET /api/v1/alerts answers what `fleettop alerts --json` prints: here every server's cpu
    past a 1 % threshold, firing at the first sample."""
    data = with_tokens(make_config(interval=3600, alerts={"for": 1}))
    data["defaults"] = {"thresholds": {"cpu": 1}}
    names = sorted(cfg.name for cfg in fleet.server_configs())
    async with api_worker(short_dir, data) as (client, _):
        assert (await client.get("/api/v1/alerts")).status_code == 401
        await client.post(f"{SEED}/collect-all", headers=bearer())

        async def firing() -> list[dict[str, Any]] | None:
            answer = (await client.get("/api/v1/alerts", headers=bearer())).json()
            return answer if sorted(a["server"] for a in answer if a["state"] == "firing") == names else None

        answer = await wait_until(firing, 30)
        assert {a["rule"] for a in answer} == {"cpu"} and all(a["threshold"] == 1 for a in answer)
        code, stdout, _ = await run_fleettop(short_dir / "config.yaml", "alerts", "--json")
        assert code == 0 and json.loads(stdout) == answer
        everything = (await client.get("/api/v1/alerts", params={"all": "true"}, headers=bearer())).json()
        assert len(everything) >= len(answer)

        async def gauged() -> bool:  # /metrics follows the rows, refreshed from the events
            found = metric_samples((await client.get("/metrics", headers=bearer())).text)
            return all(found.get(("fleettop_alerts_firing", name)) == 1 for name in names)

        await wait_until(gauged, 10)
