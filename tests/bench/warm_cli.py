"""The CLI's side of a warm collect-all, A/B in one run:
`python tests/bench/warm_cli.py [sshd|sim100|sim1000] [--repeats N] [--baseline SRC]`.

One `fleettop --headless` worker (this checkout) holds the connections; then, in
alternation, whole `fleettop collect --all --wait` and `fleettop queue stats`
processes of this checkout (B) and, with --baseline, of another source tree (A:
e.g. a `git worktree` of an older commit, put first on PYTHONPATH). Prints the
median and min wall clock and the CLI process's own CPU (wait4) of each."""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import Headless, fleettop_cmd, run_timed  # noqa: E402
from run import Bench  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("hosts", nargs="?", default="sim100", choices=["sshd", "sim100", "sim1000"])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--baseline", type=Path, help="source tree of the A side (its app/ goes first on PYTHONPATH)")
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    bench = Bench(True, args.concurrency, None)
    sides = {"B (this tree)": {}}
    if args.baseline:
        sides = {"A (" + str(args.baseline) + ")": {"PYTHONPATH": str(args.baseline.resolve())}, **sides}
    with _hosts(args.hosts, bench) as (servers, ssh, count):
        fleet = bench.fleet(f"warm-{args.hosts}", servers, ssh)
        worker = Headless(fleet)
        try:
            worker.wait_ready()
            bench.collect_all(fleet, count)  # round 1: the worker opens its connections
            results: dict[str, dict[str, list[tuple[float, float]]]] = {
                side: {"collect": [], "stats": []} for side in sides
            }
            for _ in range(args.repeats):
                for side, env in sides.items():
                    cmd = fleettop_cmd("--config", str(fleet.config), "collect", "--all", "--wait")
                    timed = run_timed(cmd, timeout=180, env=env, cwd=fleet.root)
                    ok = sum(1 for line in timed.output.splitlines() if "  ok  " in line)
                    if timed.returncode != 0 or ok != count:
                        raise RuntimeError(f"{side}: exit {timed.returncode}, {ok}/{count} ok: {timed.output[-400:]}")
                    results[side]["collect"].append((timed.wall, timed.cpu))
                    stats = run_timed(
                        fleettop_cmd("--config", str(fleet.config), "queue", "stats"),
                        timeout=60,
                        env=env,
                        cwd=fleet.root,
                    )
                    if stats.returncode != 0:
                        raise RuntimeError(f"{side}: queue stats exit {stats.returncode}: {stats.output[-400:]}")
                    results[side]["stats"].append((stats.wall, stats.cpu))
                    time.sleep(0.3)
            imports = {
                side: {command: _imports(fleet, env, args) for command, args in COMMANDS.items()}
                for side, env in sides.items()
            }
        finally:
            worker.stop()
            fleet.cleanup()
    print(
        f"\n{args.hosts}, worker.concurrency {args.concurrency}, {args.repeats} runs each, load {os.getloadavg()[0]:.2f}"
    )
    print(f"{'side':<40} {'command':<22} {'wall median':>12} {'wall min':>9} {'CLI CPU median':>15}")
    for side, figures in results.items():
        for command, runs in figures.items():
            walls = [wall for wall, _ in runs]
            cpus = [cpu for _, cpu in runs]
            label = "collect --all --wait" if command == "collect" else "queue stats"
            print(
                f"{side:<40} {label:<22} {statistics.median(walls):>10.3f} s {min(walls):>7.3f} s {statistics.median(cpus):>13.3f} s"
            )
    print(f"\n{'side':<40} {'command':<22} {'modules':>8} {'self ms':>8}  heavy packages imported")
    for side, figures in imports.items():
        for command, (count, self_ms, heavy) in figures.items():
            print(f"{side:<40} {command:<22} {count:>8} {self_ms:>8.0f}  {', '.join(heavy) or '-'}")
    return 0


COMMANDS = {"collect --all --wait": ["collect", "--all", "--wait"], "queue stats": ["queue", "stats"]}
HEAVY = {"sqlalchemy", "alembic", "aiosqlite", "asyncpg", "asyncssh", "textual"}


def _imports(fleet, env: dict, args: list[str]) -> tuple[int, float, list[str]]:
    """`python -X importtime` of one command: modules imported, their summed self time, heavy ones."""
    timed = run_timed(
        [sys.executable, "-X", "importtime", "-m", "fleettop", "--config", str(fleet.config), *args],
        timeout=180,
        env=env,
        cwd=fleet.root,
    )
    rows = [
        line[len("import time:") :].split("|") for line in timed.output.splitlines() if line.startswith("import time:")
    ]
    rows = [(int(own), name.strip()) for own, _, name in rows if own.strip().isdigit()]
    return len(rows), sum(own for own, _ in rows) / 1000, sorted({name.split(".")[0] for _, name in rows} & HEAVY)


@contextlib.contextmanager
def _hosts(kind: str, bench: Bench) -> Iterator[tuple[list[dict], dict, int]]:
    if kind == "sshd":
        with harness.real_sshd() as sshd:
            yield (*harness.sshd_servers(sshd, 100), 100)
    else:
        with harness.sim_hosts(100 if kind == "sim100" else 1000, bench.scratch) as sim:
            servers, ssh = harness.sim_servers(sim.info)
            yield servers, ssh, len(servers)


if __name__ == "__main__":
    sys.exit(main())
