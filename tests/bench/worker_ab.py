"""Worker CPU per collection, A/B in one run: `python tests/bench/worker_ab.py [--sshd] [--hosts 100]
[--concurrency 5,50] [--rounds 4] [--cli-app DIR] NAME=DIR [NAME=DIR ...]`.

Each NAME=DIR is a tree holding a `fleettop` package (a `git archive` of a commit's app/ and
styles/, unpacked as DIR/fleettop and DIR/fleettop/styles, as the wheel lays them out); its
`fleettop --headless` worker runs with PYTHONPATH=DIR. The variants take
turns (A, B, A, B, ... per concurrency) so that the load of this shared machine hits them
alike. Every `collect --all --wait` is run by one and the same CLI (--cli-app, default the
first variant), so only the worker differs. Figures per variant and concurrency: worker
CPU per warm collection (utime+stime from /proc/pid/stat over the rounds, minus its idle
rate), and the wall time of each warm collect-all process; median and min. With --cold, first
the cold collect-all (no worker running: the variant's own CLI process opens every connection,
after a discarded first-contact round); with --sshd also parallel-ssh's first round on the
same sshd, in the same run."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from run import COLLECT_TIMEOUT, Bench  # noqa: E402

IDLE_WINDOW_S = 3.0


def app_env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


class Worker(harness.Headless):
    def __init__(self, fleet: harness.Fleet, tree: Path):  # noqa: D107 -- Headless with another app tree
        self.fleet = fleet
        self.log = fleet.root / "headless.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fleettop", "--config", str(fleet.config), "--headless"],
            stdin=subprocess.DEVNULL,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=fleet.root,
            env=app_env(tree),
        )


def collect_all(fleet: harness.Fleet, count: int, cli_tree: Path) -> float:
    """One `collect --all --wait` process run by the app in `cli_tree`: its wall time."""
    timed = harness.run_timed(
        [sys.executable, "-m", "fleettop", "--config", str(fleet.config), "collect", "--all", "--wait"],
        timeout=COLLECT_TIMEOUT,
        env={"PYTHONPATH": str(cli_tree)},
        cwd=fleet.root,
    )
    ok = sum(1 for line in timed.output.splitlines() if "  ok  " in line)
    if timed.returncode != 0 or ok != count:
        raise RuntimeError(f"collect --all --wait: exit {timed.returncode}, {ok}/{count} ok: {timed.output[-600:]}")
    return timed.wall


def measure(
    bench: Bench,
    name: str,
    tree: Path,
    cli_tree: Path,
    servers,
    ssh,
    count: int,
    concurrency: int,
    rounds: int,
    hosts_pid: int | None,
    cold: list[float],
) -> tuple[float, list[float]]:
    fleet = bench.fleet(f"{name}-c{concurrency}-{time.monotonic_ns()}", servers, ssh, concurrency=concurrency)
    worker = None
    try:
        if cold is not None:
            collect_all(fleet, count, tree)  # first contact
            cold.extend(collect_all(fleet, count, tree) for _ in range(2))
        worker = Worker(fleet, tree)
        worker.wait_ready()
        collect_all(fleet, count, cli_tree)  # connections opened, first contact
        collect_all(fleet, count, cli_tree)
        time.sleep(0.5)
        idle0, wall0 = worker.cpu_seconds(), time.perf_counter()
        time.sleep(IDLE_WINDOW_S)
        idle_rate = (worker.cpu_seconds() - idle0) / (time.perf_counter() - wall0)
        spy = None
        if bench.profile_dir:
            out = bench.profile_dir / f"{name}-c{concurrency}-{time.monotonic_ns()}.txt"
            spy = subprocess.Popen(
                [
                    harness.peer_bin("py-spy"),
                    "record",
                    "--rate",
                    "1000",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--output",
                    str(out),
                    "--pid",
                    str(worker.pid),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
        cpu0, wall0 = worker.cpu_seconds(), time.perf_counter()
        hosts0 = harness.process_cpu(hosts_pid) if hosts_pid else 0.0
        walls = [collect_all(fleet, count, cli_tree) for _ in range(rounds)]
        cpu = worker.cpu_seconds() - cpu0 - idle_rate * (time.perf_counter() - wall0)
        if hosts_pid:
            print(
                f"  (the sim hosts' process: {1e3 * (harness.process_cpu(hosts_pid) - hosts0) / (rounds * count):.2f} ms CPU "
                "per collection)"
            )
        if spy:
            spy.send_signal(2)
            spy.wait(30)
            print(f"  profile: {out}")
        return 1e3 * cpu / (rounds * count), walls
    finally:
        if worker is not None:
            worker.stop()
        fleet.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("variants", nargs="+", help="NAME=DIR")
    parser.add_argument("--sshd", action="store_true", help="100 server entries on one real sshd (else sim hosts)")
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--concurrency", default="5,50")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="turns per variant and concurrency")
    parser.add_argument("--cli-app", type=Path)
    parser.add_argument(
        "--connects",
        type=int,
        help="ssh.max_concurrent_connects (per host and port) on the sshd "
        f"(default {harness.SSHD_CONNECTS}, as in run.py: 100 distinct hosts would each have their own)",
    )
    parser.add_argument("--cold", action="store_true", help="also time cold collect-alls (no worker running)")
    parser.add_argument("--spy", type=Path, help="py-spy the worker during the timed rounds, raw profiles here")
    args = parser.parse_args()
    variants = [(part.split("=", 1)[0], Path(part.split("=", 1)[1]).resolve()) for part in args.variants]
    cli_tree = (args.cli_app or variants[0][1]).resolve()
    for _, tree in variants:
        harness.compile_package(tree)
    bench = Bench(True, 5, args.spy)
    if args.spy:
        args.spy.mkdir(parents=True, exist_ok=True)
    results: dict[tuple[str, int], tuple[list[float], list[float], list[float]]] = {}

    def run(servers, ssh, hosts_pid: int | None = None) -> None:
        if args.connects:
            ssh = {**ssh, "max_concurrent_connects": args.connects}
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            for _ in range(args.repeats):
                for name, tree in variants:
                    cpus, all_walls, colds = results.setdefault((name, concurrency), ([], [], []))
                    per, walls = measure(
                        bench,
                        name,
                        tree,
                        cli_tree,
                        servers,
                        ssh,
                        args.hosts,
                        concurrency,
                        args.rounds,
                        hosts_pid,
                        colds if args.cold else None,
                    )
                    cpus.append(per)
                    all_walls.extend(walls)
                    print(
                        f"  {name} c{concurrency}: worker {per:.2f} ms/collection, collect-all "
                        + " ".join(f"{w:.2f}" for w in walls)
                        + " s"
                        + (f"; cold {colds[-2]:.2f} {colds[-1]:.2f} s" if args.cold else ""),
                        flush=True,
                    )

    print(f"load average at start: {os.getloadavg()}", flush=True)
    if args.sshd:
        with harness.real_sshd() as sshd:
            if args.cold:
                peer = subprocess.run(
                    [
                        harness.peer_bin("python"),
                        str(Path(__file__).parent / "peer_pssh.py"),
                        str(sshd.port),
                        sshd.user,
                        str(sshd.key_file),
                        str(args.hosts),
                        "3",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                firsts = [json.loads(line)["first"] for line in peer.stdout.splitlines()]
                print("parallel-ssh 1st round: " + " ".join(f"{f:.2f}" for f in firsts) + " s", flush=True)
            run(*harness.sshd_servers(sshd, args.hosts))
    else:
        with harness.sim_hosts(args.hosts, bench.scratch) as sim:
            run(*harness.sim_servers(sim.info), hosts_pid=sim.process.pid)
    print(f"load average at end: {os.getloadavg()}")
    kind = "sshd" if args.sshd else "sim"
    print(
        "\n| variant | hosts | concurrency | worker CPU/collection median (min) | warm collect-all median (min) "
        "| cold collect-all median (min) |"
    )
    print("|---|---|---|---|---|---|")
    for (name, concurrency), (cpus, walls, colds) in results.items():
        cold = f"{statistics.median(colds):.3f} s ({min(colds):.3f})" if colds else "-"
        print(
            f"| {name} | {args.hosts} {kind} | {concurrency} | {statistics.median(cpus):.2f} ms ({min(cpus):.2f}) "
            f"| {statistics.median(walls):.3f} s ({min(walls):.3f}) | {cold} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
