"""The HTTP API under load beside a busy worker:
`python tests/bench/api_load.py [--hosts 200] [--rate 200] [--seconds 30]`.

One `fleettop --headless --listen` worker collecting HOSTS simulated hosts (in a process of
their own) every 10 s. Phase 1, SECONDS without API requests: collections per second and
the worker's CPU per collection. Phase 2, the same length with RATE requests per second of
mixed reads (40 % /api/v1/servers, 30 % /metrics, 20 % queue/stats, 10 % aggregate), sent
open-loop from this process (a request every 1/RATE s, whatever the answers' pace):
latencies (p50, p99, max), errors, and again collections per second and the worker's CPU,
whose increase is what serving the API cost it."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REDIS_URL, Fleet, fleettop_cmd, process_cpu, sim_hosts, sim_servers  # noqa: E402

TOKEN = "bench-load-token-0123456789abcdef"
CONNECTIONS = 20
MIX = (
    ["/api/v1/servers"] * 4
    + ["/metrics"] * 3
    + ["/api/v1/servers/metrics/queue/stats"] * 2
    + ["/api/v1/servers/metrics/aggregate"]
)


def completed(fleet: Fleet) -> int:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return int(client.hget(fleet.prefix + "runs:counts", "completed") or 0)
    finally:
        client.close()


async def phase(fleet: Fleet, pid: int, seconds: float, load: tuple[str, float] | None) -> dict[str, float]:
    """Collections per second and the worker's CPU per collection over `seconds`; with `load`
    (base URL, rate), the requests' latencies too."""
    runs, cpu, started = completed(fleet), process_cpu(pid), time.monotonic()
    latencies: list[float] = []
    errors: list[str] = []
    if load is not None:
        url, rate = load
        host, port = url.removeprefix("http://").rsplit(":", 1)
        due: asyncio.Queue[tuple[float, str] | None] = asyncio.Queue()

        async def connection() -> None:
            """One keep-alive connection taking requests in turn; a request's latency counts from
            when it was due, so a slow answer delays (and is charged to) those queued behind it."""
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                while (item := await due.get()) is not None:
                    planned, path = item
                    writer.write(
                        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
                    )
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = int(head.split(b" ", 2)[1])
                    length = next(
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    )
                    await reader.readexactly(length)
                    latencies.append(time.monotonic() - planned)
                    if status != 200:
                        errors.append(f"{path}: {status}")
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                errors.append(f"connection: {type(exc).__name__}: {exc}")
            finally:
                writer.close()

        connections = [asyncio.create_task(connection()) for _ in range(CONNECTIONS)]
        sent = 0
        while (elapsed := time.monotonic() - started) < seconds:
            while sent < int(elapsed * rate) + 1:
                due.put_nowait((started + sent / rate, MIX[sent % len(MIX)]))
                sent += 1
            await asyncio.sleep(0.002)
        for _ in connections:
            due.put_nowait(None)
        await asyncio.gather(*connections)
    else:
        await asyncio.sleep(seconds)
    wall = time.monotonic() - started
    runs, cpu = completed(fleet) - runs, process_cpu(pid) - cpu
    figures = {
        "collections/s": runs / wall,
        "worker CPU % of a core": 100 * cpu / wall,
        "worker CPU ms per collection": 1000 * cpu / runs if runs else float("nan"),
    }
    if load is not None:
        ordered = sorted(latencies)
        figures |= {
            "requests": len(latencies),
            "requests/s": len(latencies) / wall,
            "errors": len(errors),
            "p50 ms": 1000 * statistics.median(ordered),
            "p99 ms": 1000 * ordered[int(len(ordered) * 0.99) - 1],
            "max ms": 1000 * ordered[-1],
        }
        if errors:
            print("errors:", sorted(set(errors))[:10], file=sys.stderr)
    return figures


async def bench(hosts: int, rate: float, seconds: float) -> None:
    import socket
    import subprocess

    with tempfile.TemporaryDirectory(prefix="ft-bench-load-") as scratch_dir:
        scratch = Path(scratch_dir)
        with sim_hosts(hosts, scratch) as sims:
            servers, ssh = sim_servers(sims.info)
            fleet = Fleet("load", scratch / "load", [{**server, "interval": 10} for server in servers], ssh, 50)
            fleet.write()
            data = yaml.safe_load(fleet.config.read_text())
            fleet.config.write_text(yaml.safe_dump({**data, "api": {"token": TOKEN}}))
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            log = fleet.root / "headless.log"
            worker = subprocess.Popen(
                fleettop_cmd("--config", str(fleet.config), "--headless", "--listen", f"127.0.0.1:{port}"),
                stdin=subprocess.DEVNULL,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                cwd=fleet.root,
            )
            try:
                url = f"http://127.0.0.1:{port}"
                async with httpx.AsyncClient(base_url=url) as client:
                    deadline = time.monotonic() + 60
                    while True:
                        try:
                            if (await client.get("/healthz")).status_code == 200:
                                break
                        except httpx.TransportError:
                            pass
                        if worker.poll() is not None or time.monotonic() > deadline:
                            raise RuntimeError(log.read_text()[-2000:])
                        await asyncio.sleep(0.2)
                await asyncio.sleep(15)  # the first round (new connections) out of the way
                quiet = await phase(fleet, worker.pid, seconds, None)
                loaded = await phase(fleet, worker.pid, seconds, (url, rate))
            finally:
                worker.terminate()
                worker.wait(60)
                fleet.cleanup()
    print(f"{hosts} simulated hosts every 10 s, {seconds:g} s per phase, {rate:g} requests/s asked for")
    print("| figure | without requests | with requests |")
    print("|---|---|---|")
    for key in quiet:
        print(f"| {key} | {quiet[key]:.2f} | {loaded[key]:.2f} |")
    for key in ("requests", "requests/s", "errors", "p50 ms", "p99 ms", "max ms"):
        print(f"| {key} | | {loaded[key]:.1f} |")
    extra = (loaded["worker CPU % of a core"] - quiet["worker CPU % of a core"]) / 100 / loaded["requests/s"]
    print(f"| worker CPU per request (the increase) | | {extra * 1000:.2f} ms |")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    asyncio.run(bench(args.hosts, args.rate, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
