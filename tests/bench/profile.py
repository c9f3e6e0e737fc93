"""Where the time of a collect-all goes: `python tests/bench/profile.py [sshd] [sim1000] [--out DIR]`.

With py-spy (from the peers' venv, tests/bench/peers.py, made on first use): the warm headless worker during 3 rounds
(on-CPU samples), and one warm and one cold `collect --all --wait` process
(wall-clock samples, --idle); then `-X importtime` of `fleettop queue stats`.
Prints the top functions of each profile; the raw profiles stay in DIR."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import Headless, fleettop_cmd, run_timed  # noqa: E402
from run import COLLECT_TIMEOUT, Bench  # noqa: E402
from spy_top import summarise  # noqa: E402


def spy_cli(fleet, out: Path) -> float:
    timed = run_timed(
        [
            harness.peer_bin("py-spy"),
            "record",
            "--rate",
            "100",
            "--nonblocking",
            "--idle",
            "--format",
            "raw",
            "--output",
            str(out),
            "--",
            *fleettop_cmd("--config", str(fleet.config), "collect", "--all", "--wait"),
        ],
        timeout=COLLECT_TIMEOUT,
        cwd=fleet.root,
    )
    if timed.returncode not in (0, 1):
        print(timed.output[-800:])
    return timed.wall


def profile_fleet(bench: Bench, fleet, count: int, tag: str, out: Path) -> None:
    bench.collect_all(fleet, count)  # first contact
    print(f"cold CLI under py-spy: {spy_cli(fleet, out / f'{tag}-cli-cold.txt'):.2f} s")
    worker = Headless(fleet)
    try:
        worker.wait_ready()
        bench.collect_all(fleet, count)  # connections opened
        bench.profile_dir = out
        bench.profile_warm(fleet, worker, count, tag)
    finally:
        worker.stop()
    for name in (f"{tag}-worker.txt", f"{tag}-cli.txt", f"{tag}-cli-cold.txt"):
        print(summarise(out / name, 30))
        print()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("parts", nargs="*", default=["sshd", "sim1000"])
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="ftprof-")))
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bench = Bench(True, args.concurrency, None)
    if "sshd" in args.parts:
        with harness.real_sshd() as sshd:
            servers, ssh = harness.sshd_servers(sshd, 100)
            fleet = bench.fleet("prof-sshd", servers, ssh)
            try:
                profile_fleet(bench, fleet, 100, "sshd100", args.out)
                imports = subprocess.run(
                    [
                        sys.executable,
                        "-X",
                        "importtime",
                        "-m",
                        "fleettop",
                        "--config",
                        str(fleet.config),
                        "queue",
                        "stats",
                    ],
                    capture_output=True,
                    text=True,
                    cwd=fleet.root,
                )
                (args.out / "importtime.txt").write_text(imports.stderr)
                rows = []
                for line in imports.stderr.splitlines():
                    if line.startswith("import time:") and line.split("|")[1].strip().isdigit():
                        own, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
                        rows.append((int(cumulative), int(own), name))
                top_level = sorted(
                    (row for row in rows if not row[2].startswith(" ") and "." not in row[2]), reverse=True
                )
                print("imports of `fleettop queue stats`, top-level packages by cumulative time:")
                for cumulative, _own, name in top_level[:20]:
                    print(f"  {cumulative / 1000:7.1f} ms  {name}")
                print("slowest single modules (self time):")
                for _cumulative, own, name in sorted(rows, key=lambda row: -row[1])[:15]:
                    print(f"  {own / 1000:7.1f} ms  {name.strip()}")
            finally:
                fleet.cleanup()
    if "sim1000" in args.parts:
        with harness.sim_hosts(1000, bench.scratch) as sim:
            servers, ssh = harness.sim_servers(sim.info)
            fleet = bench.fleet("prof-sim1000", servers, ssh)
            try:
                profile_fleet(bench, fleet, 1000, "sim1000", args.out)
            finally:
                fleet.cleanup()
    print(f"raw profiles in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
