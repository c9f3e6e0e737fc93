"""Where a warm collect-all's wall time and the machine's CPU go, and the least wall time
that CPU allows: `python tests/bench/round_budget.py [--rounds N] [--concurrency 50]`
(as root, like run.py: the bench's sshd has a user of its own).

100 server entries on the bench's sshd and one `fleettop --headless` worker holding their
connections, as run.py's warm figure. Two kinds of `collect --all --wait` rounds, taking turns:
- timeline rounds: Redis MONITOR, written to a file, stamps the CLI's first command, its
  enqueue (the "queue" event), the first job's start (its "run" event), the last job's
  end (SAQ's "complete" message) and the CLI's last read; the CLI's exit is reaped here.
- CPU rounds, without MONITOR: the machine's busy time (/proc/stat) split into the CLI
  process (wait4), the worker and redis-server (/proc/PID/stat), and the rest: sshd and
  the probe shells, i.e. the hosts' side, which the 100 entries put on this machine.

The bound: nothing is queued until the CLI has started, so its start-up runs alone on one
core; whatever CPU the round needs after that can at best be spread over every core.
wall >= start-up + (busy - start-up) / cores."""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from run import Bench  # noqa: E402

_MONITOR_LINE = re.compile(r'^(?P<at>\d+\.\d+) \[\d+ (?P<client>[^\]]+)\] "(?P<command>\w+)"(?P<args>.*)$')


def machine_busy() -> float:
    """Busy seconds of all cores since boot (/proc/stat: everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / harness.CLK_TCK


def timeline_round(bench: Bench, fleet: harness.Fleet) -> dict[str, float]:
    """Milliseconds from the CLI's start to each step, read off Redis MONITOR."""
    log = bench.scratch / "monitor.txt"
    with log.open("w") as out:
        monitor = subprocess.Popen(["stdbuf", "-oL", "redis-cli", "-u", harness.REDIS_URL, "monitor"], stdout=out)
        time.sleep(0.3)
        started = time.time()
        timed = bench.collect_all(fleet, 100)
        ended = started + timed.wall
        time.sleep(1.0)  # MONITOR lags a busy round
        monitor.terminate()
        monitor.wait(10)
    steps: dict[str, float] = {}
    for line in log.read_text().splitlines():
        match = _MONITOR_LINE.match(line)
        if not match or float(match["at"]) < started or match["client"] == "lua":
            continue
        at, command, args = 1e3 * (float(match["at"]) - started), match["command"], match["args"]
        if command == "PING":
            steps.setdefault("first command", at)
        elif command == "PUBLISH" and '\\"kind\\":\\"queue\\"' in args:
            steps.setdefault("enqueued", at)
        elif command == "PUBLISH" and '\\"kind\\":\\"run\\"' in args:
            steps.setdefault("first job started", at)
        elif command == "PUBLISH" and args.rstrip().endswith('"complete"'):
            steps["last job ended"] = at
        elif command == "MGET" and ":metrics:latest:" in args:
            steps["samples read"] = at
    steps["exit"] = 1e3 * (ended - started)
    missing = {"first command", "enqueued", "first job started", "last job ended", "samples read"} - steps.keys()
    if missing:
        raise RuntimeError(f"MONITOR showed no {', '.join(sorted(missing))}")
    return steps


def cpu_round(bench: Bench, fleet: harness.Fleet, worker: harness.Headless, redis_pid: int) -> dict[str, float]:
    """Seconds: the round's wall time, and the CPU of each part of the machine."""
    busy, worker_cpu, redis_cpu = machine_busy(), worker.cpu_seconds(), harness.process_cpu(redis_pid)
    timed = bench.collect_all(fleet, 100)
    busy, worker_cpu, redis_cpu = (
        machine_busy() - busy,
        worker.cpu_seconds() - worker_cpu,
        harness.process_cpu(redis_pid) - redis_cpu,
    )
    return {
        "wall": timed.wall,
        "busy": busy,
        "CLI": timed.cpu,
        "worker": worker_cpu,
        "redis-server": redis_cpu,
        "hosts (sshd, probe shells) and the rest": busy - timed.cpu - worker_cpu - redis_cpu,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6, help="rounds of each kind (default 6)")
    parser.add_argument("--concurrency", type=int, default=50, help="worker.concurrency (default 50, as run.py)")
    parser.add_argument(
        "--ansible", type=float, metavar="S", help="ansible's warm round from run.py, to print what 40x of it needs"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the bench starts sshd with a user of its own: run it as root", file=sys.stderr)
        return 2
    bench = Bench(True, args.concurrency, None)
    timelines, cpus = [], []
    with harness.real_sshd() as sshd:
        fleet = bench.fleet("budget", *harness.sshd_servers(sshd, 100))
        worker = harness.Headless(fleet)
        try:
            worker.wait_ready()
            bench.collect_all(fleet, 100)  # connections opened, first contact
            bench.collect_all(fleet, 100)
            client = redis.Redis.from_url(harness.REDIS_URL)
            redis_pid = int(client.info("server")["process_id"])
            client.close()
            for _ in range(args.rounds):
                time.sleep(0.5)
                timelines.append(timeline_round(bench, fleet))
                time.sleep(0.5)
                cpus.append(cpu_round(bench, fleet, worker, redis_pid))
        finally:
            worker.stop()
            fleet.cleanup()
    cores = os.cpu_count() or 1
    print(
        f"\nwarm collect-all, 100 sshd hosts, concurrency {args.concurrency}, {args.rounds} rounds of each kind, "
        f"{cores} cores, load {os.getloadavg()[0]:.2f}"
    )
    print("\ntimeline (ms from the CLI's start, medians)")
    previous = 0.0
    for step in timelines[0]:
        at = statistics.median(t[step] for t in timelines)
        print(f"  {step:<20} {at:>7.0f}   (+{at - previous:.0f})")
        previous = at
    print("\nCPU of one round (s, medians)")
    for part in cpus[0]:
        print(f"  {part:<40} {statistics.median(c[part] for c in cpus):>6.3f}")
    start_up = statistics.median(t["enqueued"] for t in timelines) / 1e3
    busy = statistics.median(c["busy"] for c in cpus)
    bound = start_up + (busy - start_up) / cores
    print(
        f"\nleast wall time this CPU allows: {start_up:.3f} s start-up + ({busy:.3f} - {start_up:.3f}) s / {cores} cores "
        f"= {bound:.3f} s (measured {statistics.median(c['wall'] for c in cpus):.3f} s)"
    )
    if args.ansible:
        print(f"40x ansible's {args.ansible:.1f} s needs {args.ansible / 40:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
