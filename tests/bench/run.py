"""fleettop's benchmarks against its peers, in one run: `python tests/bench/run.py [--quick] [--profile DIR]`
(or `pytest tests/bench -s -n 0`). Needs root (the sshd user), OpenSSH's sshd, Redis at
127.0.0.1:6379 and PyPI on first use: the peers (ansible-core, parallel-ssh, py-spy) get a
venv of their own under ~/.cache/fleettop-bench (tests/bench/peers.py).

Hosts: 100 "real" hosts (one OpenSSH sshd on a loopback port, 100 server entries
with distinct names; MaxStartups/MaxSessions raised as 100 separate sshds would
have them), 100 and 1,000 simulated hosts (fleettop.sim in a process of its own).

Every fleettop run has its own data_dir under /tmp and its own Redis key prefix
(deleted afterwards, never FLUSHDB). Each figure is repeated; the table shows
the median and the best run. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import Figure, Fleet, Headless, fleettop_cmd, fmt, run_timed  # noqa: E402

COLLECT_TIMEOUT = 180.0
IDLE_WINDOW_S = 4.0


class Bench:
    def __init__(self, quick: bool, concurrency: int, profile_dir: Path | None):
        self.quick = quick
        self.repeats = 2 if quick else 4
        self.concurrency = concurrency
        self.profile_dir = profile_dir
        self.scratch = Path(tempfile.mkdtemp(prefix="ftb-"))
        self.figures: list[Figure] = []
        self.notes: list[str] = []
        self.raw: dict[str, object] = {}
        self.load_start = _loadavg()
        import fleettop  # the installed package that the `fleettop` commands below run

        harness.compile_package(Path(fleettop.__file__).parent)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        print(
            f"  {figure.label}: median {fmt(figure.median, figure.unit)}, min {fmt(figure.best, figure.unit)} "
            f"({len(figure.values)} runs)",
            flush=True,
        )
        return figure

    def fleet(
        self, name: str, servers: list[dict], ssh: dict, *, concurrency: int | None = None, embedded: bool = False
    ) -> Fleet:
        fleet = Fleet(name, self.scratch / name, servers, ssh, concurrency or self.concurrency, embedded_redis=embedded)
        fleet.write()
        return fleet

    # -- one collect-all, as a user times it ---------------------------------------------

    def collect_all(self, fleet: Fleet, expect: int, *, python_flags: tuple[str, ...] = ()) -> harness.Timed:
        cmd = fleettop_cmd("--config", str(fleet.config), "collect", "--all", "--wait")
        if python_flags:
            cmd = (
                [sys.executable, *python_flags, "-m", "fleettop", *cmd[1:]]
                if harness.FLEETTOP
                else [cmd[0], *python_flags, *cmd[1:]]
            )
        timed = run_timed(cmd, timeout=COLLECT_TIMEOUT, cwd=fleet.root)
        ok = sum(1 for line in timed.output.splitlines() if re.match(r"^\S+  ok  ", line))
        if timed.returncode != 0 or ok != expect:
            failed = [line for line in timed.output.splitlines() if "  ok  " not in line][:5]
            raise RuntimeError(
                f"{fleet.name}: collect --all --wait exit {timed.returncode}, {ok}/{expect} ok: {failed}"
            )
        return timed

    def cold(self, fleet: Fleet, count: int, label: str, target: str = "", repeats: int | None = None) -> Figure:
        """No worker attached: the CLI's embedded worker opens every connection. The first
        run of a fresh data_dir is first contact (the probe samples twice, 0.25 s apart):
        it is shown on a line of its own."""
        first = self.collect_all(fleet, count)
        self.add(
            Figure(
                f"{label}, first contact (fresh DB)",
                [first.wall],
                "s",
                "1 run: `fleettop collect --all --wait` on an empty data_dir: connect + probe sampling twice",
            )
        )
        runs = [self.collect_all(fleet, count) for _ in range(repeats or self.repeats)]
        figure = self.add(
            Figure(
                label,
                [run.wall for run in runs],
                "s",
                "whole `fleettop collect --all --wait` process, no worker running (connections opened)",
                target=target,
            )
        )
        self.raw[label + " cli cpu"] = [run.cpu for run in runs]
        return figure

    def warm(self, fleet: Fleet, count: int, label: str, target: str = "") -> tuple[Figure, Headless]:
        """A headless worker holds the connections; round 1 opens them, rounds 2.. are timed."""
        worker = Headless(fleet)
        worker.wait_ready()
        self.collect_all(fleet, count)  # round 1: connections opened
        time.sleep(1.0)
        idle0, idle_wall0 = worker.cpu_seconds(), time.perf_counter()
        time.sleep(IDLE_WINDOW_S)  # the worker's own idle cost (polling, heartbeats, keepalives)
        idle_rate = (worker.cpu_seconds() - idle0) / (time.perf_counter() - idle_wall0)
        cpu0 = worker.cpu_seconds()
        wall0 = time.perf_counter()
        runs = [self.collect_all(fleet, count) for _ in range(self.repeats)]
        worker_cpu = worker.cpu_seconds() - cpu0
        span = time.perf_counter() - wall0
        figure = self.add(
            Figure(
                label,
                [run.wall for run in runs],
                "s",
                "whole `fleettop collect --all --wait` process, `fleettop --headless` already "
                "holding connections (rounds 2..)",
                target=target,
            )
        )
        per = 1e3 * max(worker_cpu - idle_rate * span, 0.0) / (len(runs) * count)
        self.add(
            Figure(
                f"{label}: worker CPU per collection",
                [per],
                "ms",
                f"headless worker utime+stime (/proc/pid/stat) over {len(runs)} rounds x {count} hosts "
                f"({worker_cpu:.2f} s CPU in {span:.1f} s) minus its idle rate x that time",
            )
        )
        self.add(
            Figure(
                f"{label}: worker idle CPU",
                [100 * idle_rate],
                "%",
                f"headless worker CPU over {IDLE_WINDOW_S:g} s with nothing to do, connections open (% of one core)",
            )
        )
        self.add(
            Figure(
                f"{label}: CLI process CPU",
                [run.cpu for run in runs],
                "s",
                "user+sys of the `collect --all --wait` process (wait4 rusage)",
            )
        )
        return figure, worker

    # -- scenarios ---------------------------------------------------------------------

    def run_sshd(self) -> None:
        print("== 100 hosts on one OpenSSH sshd (MaxStartups 200:30:400, MaxSessions 20) ==", flush=True)
        self.notes.append(
            "sshd: the probe tests' fixture (tests/probe/conftest.py real_sshd), then "
            "MaxStartups 200:30:400 and MaxSessions 20 in its sshd_config (reloaded by SIGHUP): "
            "100 separate hosts would each see one connection, one sshd sees all 100."
        )
        with harness.real_sshd() as sshd:
            servers, ssh = harness.sshd_servers(sshd, 100)
            fleet = self.fleet("sshd100", servers, ssh)
            try:
                cold = self.cold(fleet, 100, "collect-all cold, 100 sshd hosts", "<= parallel-ssh 1st round")
                warm, worker = self.warm(fleet, 100, "collect-all warm, 100 sshd hosts", "<= 0.5 s")
                warm.met = warm.median <= 0.5
                self.cli_imports(fleet)
                if self.profile_dir:
                    self.profile_warm(fleet, worker, 100, "sshd100")
                worker.stop()
            finally:
                fleet.cleanup()

            default = self.fleet("sshd100-c5", servers, ssh, concurrency=5)
            try:
                worker = None
                first = self.collect_all(default, 100)
                self.raw["sshd100 c5 first contact"] = first.wall
                self.add(
                    Figure(
                        "collect-all cold, 100 sshd hosts, default concurrency 5",
                        [self.collect_all(default, 100).wall for _ in range(max(2, self.repeats // 2))],
                        "s",
                        "as above with worker.concurrency 5 (the default)",
                    )
                )
                self.warm(default, 100, "collect-all warm, 100 sshd hosts, default concurrency 5")[1].stop()
            finally:
                default.cleanup()

            embedded = self.fleet("sshd100-emb", servers, ssh, embedded=True)
            try:
                self.collect_all(embedded, 100)
                self.add(
                    Figure(
                        "collect-all cold, 100 sshd hosts, embedded Redis",
                        [self.collect_all(embedded, 100).wall],
                        "s",
                        "redis.url null: the CLI starts (or joins) redis-server on a unix socket in data_dir",
                    )
                )
                figure, worker = self.warm(embedded, 100, "collect-all warm, 100 sshd hosts, embedded Redis")
                worker.stop()
            finally:
                embedded.cleanup()

            self.peers(sshd, cold, warm)

    def peers(self, sshd, cold: Figure, warm: Figure) -> None:
        print("== peers on the same sshd ==", flush=True)
        repeats = 1 if self.quick else 3
        # parallel-ssh
        out = run_timed(
            [
                harness.peer_bin("python"),
                str(harness.BENCH / "peer_pssh.py"),
                str(sshd.port),
                sshd.user,
                str(sshd.key_file),
                "100",
                str(repeats),
            ],
            timeout=600,
        )
        rounds = [json.loads(line) for line in out.output.splitlines() if line.startswith("{")]
        if out.returncode != 0 or not rounds or any(r["ok"] != 100 for r in rounds):
            raise RuntimeError(f"parallel-ssh failed: {out.output[-1500:]}")
        pssh_first = self.add(
            Figure(
                "parallel-ssh 1st round, 100 sshd hosts",
                [r["first"] for r in rounds],
                "s",
                "ParallelSSHClient(100 hosts).run_command('cat /proc/loadavg') + join, new client "
                "(in-process time; no host key check: libssh2 client has none)",
            )
        )
        self.add(
            Figure(
                "parallel-ssh 2nd round, same client",
                [r["second"] for r in rounds],
                "s",
                "same client, connections reused",
            )
        )
        # ansible
        first, second = [], []
        for rep in range(repeats):
            a1, a2 = self.ansible_rounds(sshd, rep)
            first.append(a1)
            second.append(a2)
        ans1 = self.add(
            Figure(
                "ansible 1st round, 100 sshd hosts",
                first,
                "s",
                "whole `ansible all -m command -a 'cat /proc/loadavg' -f 50` process, ControlPersist "
                "masters not yet open, host keys checked",
            )
        )
        ans2 = self.add(Figure("ansible 2nd round (ControlPersist warm)", second, "s", "same, control masters open"))
        cold.met = cold.median <= pssh_first.median
        cold.note = f"cold / pssh 1st = {cold.median / pssh_first.median:.2f}"
        self.add(
            Figure(
                "ratio ansible 2nd round / fleettop warm",
                [ans2.median / warm.median],
                "x",
                "medians; target >= 40x",
                target=">= 40x",
                met=ans2.median / warm.median >= 40,
            )
        )
        self.add(Figure("ratio ansible 1st round / fleettop warm", [ans1.median / warm.median], "x", "medians"))
        self.add(
            Figure(
                "ratio fleettop cold / parallel-ssh 1st round",
                [cold.median / pssh_first.median],
                "x",
                "medians; target <= 1",
                target="<= 1",
                met=cold.median <= pssh_first.median,
            )
        )

    def ansible_rounds(self, sshd, rep: int) -> tuple[float, float]:
        work = Path(tempfile.mkdtemp(prefix="fta-"))  # short: ssh control socket paths are limited to ~100 bytes
        try:
            control = work / "c"
            control.mkdir()
            hosts = [f"real-{index:03d}" for index in range(1, 101)]
            inventory = work / "inventory"
            # Each inventory host gets its own ControlPath: one sshd stands in for 100 hosts, and
            # ssh's default %C would share one master between all of them.
            inventory.write_text(
                "[bench]\n"
                + "".join(
                    f"{name} ansible_host=127.0.0.1 ansible_port={sshd.port} ansible_user={sshd.user} "
                    f"ansible_ssh_common_args='-o ControlPath={control}/{name}'\n"
                    for name in hosts
                )
            )
            (work / "ansible.cfg").write_text(f"""[defaults]
inventory = {inventory}
forks = 50
host_key_checking = True
private_key_file = {sshd.key_file}
interpreter_python = /usr/bin/python3
remote_tmp = /tmp/.ansible-bench-{sshd.user}
local_tmp = {work}/tmp
gathering = explicit
[ssh_connection]
ssh_args = -o ControlMaster=auto -o ControlPersist=120s -o UserKnownHostsFile={sshd.known_hosts} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes
pipelining = True
""")
            env = {"ANSIBLE_CONFIG": str(work / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", "HOME": str(work)}
            cmd = [harness.peer_bin("ansible"), "all", "-m", "command", "-a", "cat /proc/loadavg"]
            walls = []
            for _ in range(2):
                timed = run_timed(cmd, timeout=600, env=env, cwd=work)
                ok = timed.output.count("| CHANGED |")
                if timed.returncode != 0 or ok != 100:
                    raise RuntimeError(f"ansible: exit {timed.returncode}, {ok}/100 ok: {timed.output[-1500:]}")
                walls.append(timed.wall)
            for name in hosts:  # close the control masters this round opened
                subprocess.run(
                    ["ssh", "-o", f"ControlPath={control}/{name}", "-O", "exit", "127.0.0.1"],
                    capture_output=True,
                    timeout=10,
                )
            return walls[0], walls[1]
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def run_sim(self, count: int) -> None:
        print(f"== {count} simulated hosts (fleettop.sim in its own process) ==", flush=True)
        with harness.sim_hosts(count, self.scratch) as sim:
            servers, ssh = harness.sim_servers(sim.info)
            fleet = self.fleet(f"sim{count}", servers, ssh)
            try:
                self.cold(fleet, count, f"collect-all cold, {count} sim hosts", repeats=2 if count >= 1000 else None)
                target = "<= 3 s" if count == 1000 else ""
                warm, worker = self.warm(fleet, count, f"collect-all warm, {count} sim hosts", target)
                if target:
                    warm.met = warm.median <= 3.0
                if count == 1000:
                    rss = worker.rss_kib()
                    baseline = self.baseline_rss()
                    per_host = (rss - baseline) / count
                    self.add(
                        Figure(
                            "worker memory per host, 1,000 hosts",
                            [per_host],
                            "KiB",
                            f"(VmRSS of the headless worker after the warm rounds, {rss} KiB, minus a headless "
                            f"worker with 0 servers, {baseline} KiB) / 1000",
                            target="<= 60 KiB",
                            met=per_host <= 60,
                        )
                    )
                    if self.profile_dir:
                        self.profile_warm(fleet, worker, count, f"sim{count}")
                worker.stop()
            finally:
                fleet.cleanup()

    def baseline_rss(self) -> int:
        empty = self.fleet("empty", [], {})
        try:
            worker = Headless(empty)
            worker.wait_ready()
            time.sleep(3)
            rss = worker.rss_kib()
            worker.stop()
            return rss
        finally:
            empty.cleanup()

    # -- dashboard ---------------------------------------------------------------------

    def run_dashboard(self) -> None:
        print("== dashboard, 1,000 servers (tests/tui/bench_dashboard.py) ==", flush=True)
        script = harness.ROOT / "tests" / "tui" / "bench_dashboard.py"
        repaint, idle, single, keystroke = [], [], [], []
        for _ in range(2 if self.quick else 3):
            out = run_timed([sys.executable, str(script), "1000"], timeout=300, cwd=harness.ROOT)
            if out.returncode != 0:
                raise RuntimeError(f"bench_dashboard failed: {out.output[-1500:]}")
            repaint.append(float(re.search(r"all 1000 rows changed at once: ([\d.]+) ms", out.output).group(1)))
            single.append(float(re.search(r"one row changed, repainted: median ([\d.]+) ms", out.output).group(1)))
            idle.append(float(re.search(r"idle, live timers on, 1000 rows: ([\d.]+) %", out.output).group(1)))
            keystroke.append(max(float(ms) for ms in re.findall(r"filter keystroke.*: median ([\d.]+) ms", out.output)))
        self.raw["bench_dashboard output"] = out.output
        self.add(
            Figure(
                "dashboard repaint, 1,000 servers all changed",
                repaint,
                "ms",
                "bench_dashboard.py: CPU time of show_rows(1,000 changed rows) + the repaint (headless run_test, 160x50)",
                target="<= 50 ms",
                met=statistics.median(repaint) <= 50,
            )
        )
        self.add(Figure("dashboard repaint, one row changed", single, "ms", "bench_dashboard.py: median of 50"))
        self.add(
            Figure(
                "dashboard filter keystroke, 1,000 servers",
                keystroke,
                "ms",
                "bench_dashboard.py: CPU time of one key in the filter box + the repaint, the slower of narrowing "
                "('d') and widening (backspace), median of 10 each",
                target="<= 50 ms",
                met=statistics.median(keystroke) <= 50,
            )
        )
        self.add(
            Figure(
                "idle TUI CPU, 1,000 servers",
                idle,
                "%",
                "bench_dashboard.py: process CPU over 10 s, live timers on, nothing changing (% of one core)",
                target="< 2 %",
                met=statistics.median(idle) < 2,
            )
        )

    # -- CLI start-up ------------------------------------------------------------------

    def cli_imports(self, fleet: Fleet) -> None:
        print("== CLI start-up ==", flush=True)
        commands = {
            "queue stats": ["queue", "stats"],
            "servers list": ["servers", "list"],
            "export": ["export", "--format", "json", "--since", "1h"],
            "collect --all --wait": ["collect", "--all", "--wait"],
        }
        importers = {}
        for name, args in commands.items():
            timed = run_timed(
                [sys.executable, "-X", "importtime", "-m", "fleettop", "--config", str(fleet.config), *args],
                timeout=COLLECT_TIMEOUT,
                cwd=fleet.root,
            )
            modules = [
                line.split("|")[-1].strip() for line in timed.output.splitlines() if line.startswith("import time:")
            ]
            importers[name] = [module for module in modules if module.split(".")[0] == "textual"]
            if name == "queue stats":
                total = sum(
                    int(line.split("|")[0].split(":")[1])
                    for line in timed.output.splitlines()
                    if line.startswith("import time:") and line.split("|")[0].split(":")[1].strip().isdigit()
                )
                self.raw["import self-time total (queue stats), ms"] = total / 1000
        clean = all(not found for found in importers.values())
        self.add(
            Figure(
                "CLI paths import Textual",
                [0.0 if clean else 1.0],
                "",
                "python -X importtime -m app ... for "
                + ", ".join(commands)
                + (
                    "; none imports textual"
                    if clean
                    else f"; textual imported by {[k for k, v in importers.items() if v]}"
                ),
                target="no",
                met=clean,
            )
        )
        stats = [
            run_timed(fleettop_cmd("--config", str(fleet.config), "queue", "stats"), timeout=60, cwd=fleet.root).wall
            for _ in range(self.repeats)
        ]
        self.add(
            Figure(
                "`fleettop queue stats` whole process",
                stats,
                "s",
                "wall clock: the CLI's floor (imports, DB open, Redis)",
            )
        )
        self.add(
            Figure(
                "imports, self time summed (queue stats)",
                [self.raw["import self-time total (queue stats), ms"]],
                "ms",
                "-X importtime, sum of self times",
            )
        )

    # -- profiles ----------------------------------------------------------------------

    def profile_warm(self, fleet: Fleet, worker: Headless, count: int, tag: str) -> None:
        """py-spy on the headless worker (on-CPU samples) and on the CLI (wall: --idle), warm round."""
        assert self.profile_dir is not None
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        spy = harness.peer_bin("py-spy")
        worker_out = self.profile_dir / f"{tag}-worker.txt"
        recorder = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(worker.pid),
                "--rate",
                "200",
                "--format",
                "raw",
                "--output",
                str(worker_out),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        for _ in range(3):
            self.collect_all(fleet, count)
        recorder.send_signal(2)
        recorder.wait(60)
        cli_out = self.profile_dir / f"{tag}-cli.txt"
        timed = run_timed(
            [
                spy,
                "record",
                "--rate",
                "100",
                "--nonblocking",
                "--idle",
                "--format",
                "raw",
                "--output",
                str(cli_out),
                "--",
                *fleettop_cmd("--config", str(fleet.config), "collect", "--all", "--wait"),
            ],
            timeout=COLLECT_TIMEOUT,
            cwd=fleet.root,
        )
        if timed.returncode != 0:
            print(timed.output[-800:])
        print(f"  profiles: {worker_out}, {cli_out}", flush=True)

    # -- the table ---------------------------------------------------------------------

    def table(self) -> str:
        lines = [
            "",
            f"fleettop benchmarks -- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
            f"worker.concurrency {self.concurrency} unless noted, ssh.max_concurrent_connects {harness.SSHD_CONNECTS} on the "
            "sshd that plays 100 hosts, "
            f"{'quick' if self.quick else 'full'} run; load average at start {self.load_start}, at end {_loadavg()} "
            "(other jobs share this machine: see the min column)",
            "",
            f"| {'figure':<84} | {'median':>11} | {'min':>11} | {'n':>2} | {'target':<26} | {'met':<3} |",
            f"|{'-' * 86}|{'-' * 13}|{'-' * 13}|{'-' * 4}|{'-' * 28}|{'-' * 5}|",
        ]
        for f in self.figures:
            met = "" if f.met is None else ("yes" if f.met else "NO")
            target = f.target + (f" ({f.note})" if f.note else "")
            if f.label == "CLI paths import Textual":
                value = best = "no" if f.met else "YES"
            else:
                value, best = fmt(f.median, f.unit), fmt(f.best, f.unit)
            lines.append(f"| {f.label:<84} | {value:>11} | {best:>11} | {len(f.values):>2} | {target:<26} | {met:<3} |")
        lines += ["", "How each figure was measured:"]
        lines += [f"- {f.label}: {f.how}" for f in self.figures]
        lines += ["", *[f"Note: {note}" for note in self.notes]]
        return "\n".join(lines)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- --all: the README's Performance section, every row ----------------------------------


def _shells() -> list[str]:
    """probe_cost.py's shells: dash, bash and busybox sh, those installed."""
    found = [name for name in ("dash", "bash") if shutil.which(name)]
    return found + (["busybox sh"] if shutil.which("busybox") else [])


# The scripts whose figures the README's Performance section shows beside run.py's own, each run
# as a process of its own: (script, full-run arguments, --quick arguments).
SCRIPTS: list[tuple[str, list[str], list[str]]] = [
    ("jump_hosts.py", [], ["--rounds", "4"]),
    ("probe_cost.py", _shells(), _shells()),
    ("api_scrape.py", [], ["--repeats", "10"]),
    ("api_collect.py", [], ["--repeats", "2"]),
    ("api_load.py", [], ["--seconds", "10"]),
    ("alert_ab.py", [], ["--rounds", "3", "--repeats", "1"]),
    ("alert_storm.py", [], []),
    ("history_bench.py", [], ["--rounds", "3", "--demo", "10"]),
    ("scale_out.py", [], ["--quick"]),
]


def run_script(script: str, args: list[str]) -> tuple[int, str, float]:
    """Run one bench script with this interpreter, its output shown as it comes and kept."""
    print(f"\n== tests/bench/{script} {' '.join(args)} ==", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(harness.BENCH / script), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=harness.ROOT,
    )
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    return process.wait(), "".join(lines), time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, no 1,000-host cold repeats")
    parser.add_argument(
        "--concurrency", type=int, default=50, help="worker.concurrency (default 50, as ansible's forks)"
    )
    parser.add_argument(
        "--only", nargs="*", choices=["sshd", "sim100", "sim1000", "dashboard"], help="run only these parts"
    )
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="also record py-spy profiles of the warm rounds here"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON too")
    parser.add_argument(
        "--all",
        action="store_true",
        help="every row of the README's Performance section: this bench, then "
        + ", ".join(script for script, _, _ in SCRIPTS)
        + "; all their tables printed together at the end (--report FILE: written there too)",
    )
    parser.add_argument("--report", type=Path, metavar="FILE", help="with --all: the combined tables, written here")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("the bench starts sshd with a user of its own: run it as root", file=sys.stderr)
        return 2
    if args.all:
        return run_all(args)
    return run_bench(args)


def run_all(args: argparse.Namespace) -> int:
    """run.py's own bench, then every script of SCRIPTS, then all their outputs in one report."""
    started, load = time.monotonic(), _loadavg()
    own = [*(["--quick"] if args.quick else []), "--concurrency", str(args.concurrency)]
    results = [("run.py", own, *run_script("run.py", own))]
    for script, full, quick in SCRIPTS:
        script_args = quick if args.quick else full
        results.append((script, script_args, *run_script(script, script_args)))
    report = [
        "",
        "=" * 100,
        f"fleettop's Performance figures, `run.py --all{' --quick' if args.quick else ''}`: "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, load average at start "
        f"{load}, at end {_loadavg()}, {time.monotonic() - started:.0f} s in all",
        "=" * 100,
    ]
    for script, script_args, code, output, took in results:
        report += ["", f"## tests/bench/{script} {' '.join(script_args)} (exit {code}, {took:.0f} s)", ""]
        report.append(output.rstrip())
    text = "\n".join(report)
    print(text)
    if args.report:
        args.report.write_text(text + "\n")
    failed = [script for script, _, code, _, _ in results if code != 0]
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def run_bench(args: argparse.Namespace) -> int:
    bench = Bench(args.quick, args.concurrency, args.profile)
    parts = args.only or ["sshd", "sim100", "sim1000", "dashboard"]
    started = time.monotonic()
    try:
        if "sshd" in parts:
            bench.run_sshd()
        if "sim100" in parts:
            bench.run_sim(100)
        if "sim1000" in parts:
            bench.run_sim(1000)
        if "dashboard" in parts:
            bench.run_dashboard()
    finally:
        print(bench.table())
        print(f"\n(bench took {time.monotonic() - started:.0f} s; scratch {bench.scratch})")
        if args.json:
            args.json.write_text(
                json.dumps([{**f.__dict__, "median": f.median, "min": f.best} for f in bench.figures], indent=2)
            )
        shutil.rmtree(bench.scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
