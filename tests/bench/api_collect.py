"""collect-all over HTTP against `fleettop collect --all --wait`, warm, in one run:
`python tests/bench/api_collect.py [--hosts 100] [--repeats 5]`.

One `fleettop --headless --listen` worker holds the connections to HOSTS simulated hosts
(in a process of their own). In alternation: a whole `fleettop collect --all --wait`
process, and `POST /api/v1/servers/metrics/collect-all` followed by waiting (on the run
counts in Redis, every 5 ms) until every host was collected. Prints the median and min
wall clock of each, from the start of the process or the request to the last sample."""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_load import TOKEN, completed  # noqa: E402
from harness import Fleet, fleettop_cmd, run_timed, sim_hosts, sim_servers  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ft-bench-collect-") as scratch_dir:
        scratch = Path(scratch_dir)
        with sim_hosts(args.hosts, scratch) as sims:
            servers, ssh = sim_servers(sims.info)
            fleet = Fleet("collect", scratch / "collect", servers, ssh, 50)
            fleet.write()
            fleet.config.write_text(
                yaml.safe_dump({**yaml.safe_load(fleet.config.read_text()), "api": {"token": TOKEN}})
            )
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
                client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"})
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if client.get("/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if worker.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(log.read_text()[-2000:])
                    time.sleep(0.1)
                cli = fleettop_cmd("--config", str(fleet.config), "collect", "--all", "--wait")
                run_timed(cli, timeout=120)  # warm: the worker opens its connections
                by_cli, by_http = [], []
                for _ in range(args.repeats):
                    timed = run_timed(cli, timeout=120)
                    assert timed.returncode == 0, timed.output[-1000:]
                    by_cli.append(timed.wall)
                    before = completed(fleet)
                    started = time.perf_counter()
                    answer = client.post("/api/v1/servers/metrics/collect-all")
                    assert answer.json()["queued"] == args.hosts, answer.text
                    while completed(fleet) < before + args.hosts:
                        time.sleep(0.005)
                    by_http.append(time.perf_counter() - started)
                client.close()
            finally:
                worker.terminate()
                worker.wait(60)
                fleet.cleanup()
    print(f"| warm collect-all, {args.hosts} simulated hosts | median (min) |")
    print("|---|---|")
    print(f"| `fleettop collect --all --wait`, whole process | {statistics.median(by_cli):.3f} s ({min(by_cli):.3f}) |")
    print(f"| `POST …/collect-all` to the last sample | {statistics.median(by_http):.3f} s ({min(by_http):.3f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
