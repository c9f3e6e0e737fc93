"""Scale out (#18): `python tests/bench/scale_out.py [--hosts 5000] [--interval 60] [--quick]`.

HOSTS simulated hosts served by several simulator processes (sim_host.py, about 1,250 hosts
each, every one its own seed), two `fleettop --headless` workers sharing the Redis at
127.0.0.1:6379 (a private key prefix, deleted after) and a PostgreSQL database of their own
(created on FLEETTOP_TEST_PG_URL's server, dropped after), every server collected every
INTERVAL seconds (worker.concurrency 50, as the other figures). Then:

- warm-up: the first round (every server sampled once: connections opened, first contact),
  then --warmup more intervals;
- --windows intervals measured, the windows placed where the schedule is quietest (the
  middle of the widest gap of the collections' phases in the last warm-up interval, so a
  collection's small lateness cannot move it from one window to the next). From the
  database: samples per server per window (min, max, the servers missed or doubled), the
  scheduled runs ok and failed, the gaps between a server's consecutive samples;
- per worker: its RSS at the end of the windows / the hosts it holds a connection to, and
  the CPU (utime+stime, /proc/PID/stat) over the windows / the collections it answered; the
  simulators count answers and open connections per connection (client and server port,
  sim_host.py), each matched to the worker owning its client socket (/proc/PID/fd and
  /proc/net/tcp); `queue stats --json` gives the workers' own account beside it;
- SSH connections per host, open at the end of the windows and at the end of the run, as the
  simulators see them; and the connections and probe sessions opened during the windows;
- warm `fleettop collect --all --wait` of every host, whole process, beside the workers;
- the dashboard with HOSTS rows (tests/tui/bench_dashboard.py HOSTS): all rows changed, and one
  filter keystroke (narrowing, and backspace widening), CPU time including the repaint.

--quick: 500 hosts, a 20 s interval, one collect-all, one dashboard run. Needs Redis,
PostgreSQL (trust auth; default postgresql+asyncpg://postgres@127.0.0.1:5432/test) and ~2 GB
of memory at 5,000 hosts; no root.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import Figure, Fleet, Headless, fleettop_cmd, fmt, process_cpu, run_timed  # noqa: E402

PG_URL = os.environ.get("FLEETTOP_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
HOSTS_PER_SIM = 1250
COLLECT_TIMEOUT = 900.0


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# -- PostgreSQL: a database of its own --------------------------------------------------


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_dsn(PG_URL))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database on PG_URL's server (its SQLAlchemy URL), dropped afterwards."""
    name = f"ftbench_scale_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f"CREATE DATABASE {name}"))
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def query(url: str, sql: str, *args: object) -> list:
    import asyncpg

    async def run() -> list:
        conn = await asyncpg.connect(_dsn(url))
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


# -- which worker owns which connection --------------------------------------------------


def tcp_ports(pid: int) -> set[str]:
    """The TCP connections process `pid` holds (its fds' inodes in /proc/net/tcp), each named
    "LOCAL_PORT-REMOTE_PORT" as the simulators name them from their side."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(f"{int(fields[1].rsplit(':', 1)[1], 16)}-{int(fields[2].rsplit(':', 1)[1], 16)}")
    return ports


TCP_STATES = {"01": "established", "04": "fin-wait-1", "05": "fin-wait-2", "06": "time-wait", "08": "close-wait"}


def client_sockets(connections: set[str]) -> collections.Counter[str]:
    """What /proc/net/tcp says of the client side of these connections ("CLIENT-SERVER" ports):
    their states, "owned by no process" when the inode is 0 (closed by its process, still in
    the kernel)."""
    found: collections.Counter[str] = collections.Counter()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        name = f"{int(fields[1].rsplit(':', 1)[1], 16)}-{int(fields[2].rsplit(':', 1)[1], 16)}"
        if name in connections:
            state = TCP_STATES.get(fields[3], fields[3])
            found[state + (", owned by no process" if fields[9] == "0" else "")] += 1
    return found


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def merge_stats(parts: list[dict], prefixes: list[str]) -> dict:
    """The simulators' stats as one: hosts under their server names, answers per connection."""
    hosts, answers = {}, collections.Counter()
    for part, prefix in zip(parts, prefixes, strict=True):
        for name, host in part["hosts"].items():
            hosts[prefix + name] = host
        answers.update(part["answers_by_connection"])
    return {"hosts": hosts, "answers": answers}


# -- the bench ---------------------------------------------------------------------------


class ScaleOut:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.figures: list[Figure] = []
        self.notes: list[str] = []
        self.raw: dict[str, object] = {}
        self.load_start = loadavg()
        self.loads: list[str] = []
        self.scratch = Path(tempfile.mkdtemp(prefix="ftscale-"))

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        shown = f"median {fmt(figure.median, figure.unit)}, min {fmt(figure.best, figure.unit)}"
        if figure.unit == "":
            shown = figure.note
        say(f"  {figure.label}: {shown} ({len(figure.values)} runs)")
        return figure

    # -- the fleet --------------------------------------------------------------------

    def run_fleet(self) -> None:
        args = self.args
        count, interval = args.hosts, args.interval
        sims_n = args.sims or min(count, max(2, math.ceil(count / HOSTS_PER_SIM)))
        sizes = [count // sims_n + (1 if index < count % sims_n else 0) for index in range(sims_n)]
        say(f"== {count} simulated hosts in {sims_n} processes, {args.workers} workers, interval {interval} s ==")
        with fresh_database() as db_url, contextlib.ExitStack() as stack:
            sims = []
            for index, size in enumerate(sizes):
                sims.append(
                    stack.enter_context(harness.sim_hosts(size, self.scratch, seed=11 + index, tag=f"-p{index}"))
                )
            prefixes = [f"p{index}-" for index in range(sims_n)]
            servers = []
            for sim, prefix in zip(sims, prefixes, strict=True):
                # The simulators' key and known_hosts are copied here: their own files sit in
                # /tmp/fleettop-sim-*, which others' test clean-ups on a shared machine may remove.
                key = self.scratch / f"client_key-{prefix.rstrip('-')}"
                shutil.copy(sim.info["client_key"], key)
                key.chmod(0o600)
                servers += [{**server, "key_file": str(key)} for server in harness.sim_servers(sim.info, prefix)[0]]
            known_hosts = self.scratch / "known_hosts"
            known_hosts.write_text("".join(Path(sim.info["known_hosts"]).read_text() for sim in sims))
            say(f"simulators up: {len(servers)} hosts")

            baseline = self.baseline_rss(db_url)
            fleet = Fleet(
                "scale",
                self.scratch / "scale",
                servers,
                {"known_hosts": str(known_hosts)},
                args.concurrency,
                database_url=db_url,
                interval=interval,
            )
            fleet.write()
            stack.callback(fleet.cleanup)
            stack.callback(self.keep_logs, fleet)  # runs before the cleanup, after the workers stop
            synced = run_timed(fleettop_cmd("--config", str(fleet.config), "servers", "list"), timeout=600)
            if synced.returncode != 0:
                raise RuntimeError(f"servers list: {synced.output[-800:]}")
            say(f"config's {count} servers in the database ({synced.wall:.1f} s: `fleettop servers list`, first start)")
            self.notes.append(
                f"first `fleettop servers list` (the config's {count} servers written to the empty database): "
                f"{synced.wall:.1f} s wall, {synced.cpu:.1f} s CPU"
            )

            workers = [Headless(fleet, f"headless-{index}.log") for index in range(args.workers)]
            for worker in workers:
                stack.callback(worker.stop)
            started = time.time()
            deadline = time.monotonic() + 120
            while fleet.workers_alive() < args.workers:
                if time.monotonic() > deadline or any(w.process.poll() is not None for w in workers):
                    raise RuntimeError("workers did not start: " + workers[0].log.read_text()[-800:])
                time.sleep(0.2)
            say(f"{args.workers} workers up ({time.time() - started:.1f} s)")

            # -- warm-up: the first round, then --warmup intervals
            while True:
                sampled = query(db_url, "SELECT count(DISTINCT server_id) AS n FROM samples")[0]["n"]
                if sampled >= count:
                    break
                failed = query(db_url, "SELECT count(*) AS n, max(error) AS error FROM runs WHERE status = 'failed'")[0]
                if failed["n"] > count // 10:
                    raise RuntimeError(
                        f"{failed['n']} collections failed in the first round, such as: {failed['error']}"
                    )
                if time.time() - started > max(600, 10 * interval):
                    raise RuntimeError(f"first round not done after {time.time() - started:.0f} s: {sampled}/{count}")
                time.sleep(2)
            first_round = time.time() - started
            say(f"first round done: every host sampled once, {first_round:.1f} s after the workers started")
            self.add(
                Figure(
                    f"first round, {count} hosts (cold: connect + first contact)",
                    [first_round],
                    "s",
                    "from the workers' start to every server having a sample (polled every 2 s)",
                )
            )
            warm_end = started + first_round + args.warmup * interval
            time.sleep(max(0.0, warm_end - time.time()))
            t0 = self.quiet_start(db_url, warm_end, interval)
            t_end = t0 + args.windows * interval
            say(
                f"warm; windows {time.strftime('%H:%M:%S', time.localtime(t0))} + {args.windows} x {interval} s "
                f"(load {loadavg()})"
            )
            time.sleep(max(0.0, t0 - time.time()))
            self.loads.append(loadavg())
            spy = self.spy(workers[0].pid, interval) if args.spy else None
            cpu0 = [process_cpu(w.pid) for w in workers]
            sim_cpu0 = [process_cpu(sim.process.pid) for sim in sims]
            stats0 = merge_stats([sim.stats() for sim in sims], prefixes)
            time.sleep(max(0.0, t_end - time.time()))
            cpu1 = [process_cpu(w.pid) for w in workers]
            sim_cpu1 = [process_cpu(sim.process.pid) for sim in sims]
            rss = [rss_kib(w.pid) for w in workers]
            ports = [tcp_ports(w.pid) for w in workers]
            stats1 = merge_stats([sim.stats() for sim in sims], prefixes)
            self.loads.append(loadavg())
            self.queue_workers(fleet)
            say(f"windows over (load {loadavg()}); waiting for the collections under way")
            if spy is not None:
                spy.wait(60)
                from spy_top import summarise

                print(summarise(args.spy / "worker0.txt", 30), flush=True)
            time.sleep(min(10.0, interval / 4))
            self.judge_windows(db_url, t0, t_end, interval, count)
            self.judge_workers(workers, cpu0, cpu1, rss, ports, stats0, stats1, baseline, count)
            sim_cpu = sum(sim_cpu1) - sum(sim_cpu0)
            collected = sum(stats1["answers"].values()) - sum(stats0["answers"].values())
            self.notes.append(
                f"the simulators' own CPU over the windows: {sim_cpu:.1f} s for {collected} answers "
                f"({1e3 * sim_cpu / max(collected, 1):.2f} ms an answer, keepalives included; not fleettop's)"
            )
            self.sessions(stats0, stats1, "at the end of the windows")

            # -- warm collect-all beside the workers
            walls, cpus = [], []
            for _ in range(args.collect_repeats):
                w_cpu0 = [process_cpu(w.pid) for w in workers]
                s_cpu0 = sum(process_cpu(sim.process.pid) for sim in sims)
                timed = run_timed(
                    fleettop_cmd("--config", str(fleet.config), "collect", "--all", "--wait"),
                    timeout=COLLECT_TIMEOUT,
                    cwd=fleet.root,
                )
                ok = sum(1 for line in timed.output.splitlines() if re.match(r"^\S+  ok  ", line))
                if timed.returncode != 0 or ok != count:
                    bad = [line for line in timed.output.splitlines() if "  ok  " not in line][:5]
                    raise RuntimeError(f"collect --all --wait: exit {timed.returncode}, {ok}/{count} ok: {bad}")
                walls.append(timed.wall)
                cpus.append(timed.cpu)
                w_cpu = [process_cpu(w.pid) - c for w, c in zip(workers, w_cpu0, strict=True)]
                s_cpu = sum(process_cpu(sim.process.pid) for sim in sims) - s_cpu0
                text = (
                    f"collect --all --wait: {timed.wall:.2f} s; CPU meanwhile: the CLI {timed.cpu:.2f} s, the workers "
                    + " + ".join(f"{c:.2f}" for c in w_cpu)
                    + f" s, the simulators {s_cpu:.2f} s; load {loadavg()}"
                )
                self.notes.append(text)
                say("  " + text)
            self.add(
                Figure(
                    f"warm collect-all, {count} simulated hosts, {args.workers} workers running",
                    walls,
                    "s",
                    "whole `fleettop collect --all --wait` process (fork to reaped exit), every host ok, the "
                    "workers holding their connections and collecting on schedule meanwhile",
                )
            )
            self.add(
                Figure(
                    f"warm collect-all, {count} hosts: CLI process CPU", cpus, "s", "user+sys of that process (wait4)"
                )
            )
            final = merge_stats([sim.stats() for sim in sims], prefixes)
            self.sessions(stats1, final, "at the end of the run", figures=False)
            self.loads.append(loadavg())
            for worker in workers:
                code = worker.stop()
                if code != 0:
                    self.notes.append(f"a worker exited {code}: {worker.log.read_text()[-300:]}")
            errors = [line for worker in workers for line in worker.log.read_text().splitlines() if "Traceback" in line]
            if errors:
                self.notes.append(f"{len(errors)} tracebacks in the workers' logs (kept in {self.scratch})")
                args.keep = True

    def spy(self, pid: int, interval: float) -> subprocess.Popen:
        """py-spy (the peers' venv) on a worker for one interval of the windows: on-CPU samples."""
        self.args.spy.mkdir(parents=True, exist_ok=True)
        out = self.args.spy / "worker0.txt"
        self.notes.append(f"py-spy on worker 0 for {interval:g} s of the windows (100 Hz, raw): {out}")
        return subprocess.Popen(
            [
                harness.peer_bin("py-spy"),
                "record",
                "--pid",
                str(pid),
                "--rate",
                "100",
                "--duration",
                str(int(interval)),
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def queue_workers(self, fleet: Fleet) -> None:
        """The workers as `fleettop queue stats --json` lists them (servers assigned, connections
        held: their own heartbeats' account), beside the simulators' count."""
        out = run_timed(fleettop_cmd("--config", str(fleet.config), "queue", "--json", "stats"), timeout=120)
        try:
            listed = json.loads(out.output[out.output.index("{") :]).get("workers")
        except ValueError:
            listed = None
        if listed is None:
            self.notes.append("`queue stats --json` lists no workers (a fleettop before host affinity)")
            return
        self.notes.append(
            "`queue stats --json` workers: "
            + "; ".join(
                f"pid {w.get('pid')}: {w.get('servers')} servers assigned, {w.get('connections')} connections held"
                for w in listed
            )
        )

    def keep_logs(self, fleet: Fleet) -> None:
        for log in fleet.root.glob("*.log"):
            shutil.copy(log, self.scratch / log.name)

    def baseline_rss(self, db_url: str) -> int:
        """A headless worker with no server, on the same database (it migrates it): its RSS."""
        empty = Fleet("empty", self.scratch / "empty", [], {}, self.args.concurrency, database_url=db_url)
        empty.write()
        try:
            worker = Headless(empty)
            worker.wait_ready(120)
            time.sleep(3)
            rss = worker.rss_kib()
            worker.stop()
            say(f"a headless worker with no server: {rss} KiB RSS")
            return rss
        finally:
            empty.cleanup()

    def quiet_start(self, db_url: str, now: float, interval: float) -> float:
        """The first time after `now` + 2 s at the middle of the widest gap of the collections'
        phases (start time modulo the interval) over the last interval."""
        rows = query(
            db_url,
            "SELECT extract(epoch FROM started_at)::float8 AS t FROM runs WHERE trigger <> 'manual' AND started_at >= $1",
            _ts(now - interval),
        )
        phases = sorted(row["t"] % interval for row in rows)
        if not phases:
            return now + 2
        gaps = [(phases[0] + interval - phases[-1], phases[-1])]
        gaps += [(b - a, a) for a, b in zip(phases, phases[1:], strict=False)]
        width, after = max(gaps)
        middle = (after + width / 2) % interval
        start = now + 2
        t0 = start - start % interval + middle
        while t0 < start:
            t0 += interval
        self.notes.append(
            f"windows start at phase {middle:.1f} s of the {interval:g} s grid: the middle of the widest gap "
            f"({width:.1f} s) between the collections of the last warm-up interval ({len(phases)} runs)"
        )
        return t0

    def judge_windows(self, db_url: str, t0: float, t_end: float, interval: float, count: int) -> None:
        """Samples per server per interval, two ways. Each server's own schedule: its grid is
        anchored on its least late sample (collections are due on a grid, planned + k x interval,
        and never start early), and the last --windows whole grid intervals before the end are
        counted (they begin at most one interval before the measured span). And fixed windows
        [t0 + k x interval, ...), the same for every server: a collection a few seconds late
        near a boundary moves to the next window there, so a miss and a double can show
        there that the own-grid count does not have; the gaps between samples tell."""
        servers = {row["id"]: row["name"] for row in query(db_url, "SELECT id, name FROM servers WHERE enabled")}
        samples = query(
            db_url,
            "SELECT server_id, extract(epoch FROM collected_at)::float8 AS t FROM samples "
            "WHERE collected_at >= $1 AND collected_at < $2 ORDER BY server_id, collected_at",
            _ts(t0 - interval),
            _ts(t_end),
        )
        windows, margin = self.args.windows, 0.5
        times: dict[int, list[float]] = collections.defaultdict(list)
        for row in samples:
            times[row["server_id"]].append(row["t"])
        fixed = {sid: [0] * windows for sid in servers}
        own = {sid: [0] * windows for sid in servers}
        lateness = []
        for sid in servers:
            ts = times.get(sid, [])
            for t in ts:
                if t >= t0:
                    fixed[sid][int((t - t0) // interval)] += 1
            if not ts:
                continue
            shifts = [((t - ts[0] + interval / 2) % interval) - interval / 2 for t in ts]
            anchor = ts[0] + min(shifts)
            lateness += [shift - min(shifts) for shift in shifts]
            last = anchor + math.floor((t_end - anchor) / interval) * interval - margin
            for t in ts:
                k = math.floor((last - t) / interval)  # 0: the interval just before `last`
                if 0 <= k < windows:
                    own[sid][windows - 1 - k] += 1
        gaps = []
        for ts in times.values():
            gaps += [b - a for a, b in zip(ts, ts[1:], strict=False)]

        def judge(per: dict[int, list[int]]) -> tuple[list[int], list, list]:
            counts = [n for values in per.values() for n in values]
            missed = sorted((servers[sid], k) for sid, values in per.items() for k, n in enumerate(values) if n == 0)
            doubled = sorted((servers[sid], k, n) for sid, values in per.items() for k, n in enumerate(values) if n > 1)
            return counts, missed, doubled

        counts, missed, doubled = judge(own)
        self.add(
            Figure(
                f"collections per host per interval of its schedule, {count} hosts x {windows} intervals",
                [min(counts), max(counts)],
                "",
                f"samples in the database ({len(samples)} rows) per server in each of its last {windows} grid "
                "intervals before the end of the windows (the grid anchored on its least late sample); "
                f"lateness behind the grid: median {statistics.median(lateness):.1f} s, max {max(lateness):.1f} s",
                target="exactly 1",
                met=len(servers) == count and not missed and not doubled,
                note=f"min {min(counts)}, max {max(counts)}; {len(missed)} missed, {len(doubled)} doubled",
            )
        )
        for what, found in (("missed", missed), ("doubled", doubled)):
            if found:
                self.notes.append(f"{what} on its own grid: {found[:20]}{' ...' if len(found) > 20 else ''}")
        fcounts, fmissed, fdoubled = judge(fixed)
        self.add(
            Figure(
                f"samples per host per fixed {interval:g} s window, {count} hosts x {windows} windows",
                [min(fcounts), max(fcounts)],
                "",
                "the same samples in windows common to all servers, from the windows' start: a collection late by "
                "a few seconds near a boundary counts in the next window (see the gaps)",
                note=f"min {min(fcounts)}, max {max(fcounts)}; {len(fmissed)} missed, {len(fdoubled)} doubled",
            )
        )
        if fmissed or fdoubled:
            self.notes.append(
                f"fixed windows: missed {fmissed[:5]}{' ...' if len(fmissed) > 5 else ''}, doubled "
                f"{fdoubled[:5]}{' ...' if len(fdoubled) > 5 else ''}"
            )
        if gaps:
            long, short = sum(g > 1.5 * interval for g in gaps), sum(g < 0.5 * interval for g in gaps)
            self.add(
                Figure(
                    "gap between a host's consecutive samples (min / max over all hosts)",
                    [min(gaps), max(gaps)],
                    "",
                    f"{len(gaps)} gaps from one interval before the windows to their end; over 1.5 intervals (a miss): "
                    f"{long}, under half of one (a double): {short}",
                    note=f"{min(gaps):.2f} s / {max(gaps):.2f} s (median {statistics.median(gaps):.2f} s)",
                )
            )
        runs = query(
            db_url,
            "SELECT trigger, status, count(*) AS n FROM runs WHERE started_at >= $1 AND started_at < $2 "
            "GROUP BY trigger, status ORDER BY trigger, status",
            _ts(t0),
            _ts(t_end),
        )
        self.notes.append(
            "runs started in the windows, by trigger and status: "
            + ", ".join(f"{row['trigger']} {row['status']} {row['n']}" for row in runs)
        )
        self.raw["per_interval"] = {servers[sid]: values for sid, values in own.items()}

    def judge_workers(self, workers, cpu0, cpu1, rss, ports, stats0, stats1, baseline, count) -> None:
        owner = {port: index for index, owned in enumerate(ports) for port in owned}
        answers = [0] * len(workers)
        unattributed = 0
        for port, n in stats1["answers"].items():
            delta = n - stats0["answers"].get(port, 0)
            if port in owner:
                answers[owner[port]] += delta
            else:
                unattributed += delta
        held = [set() for _ in workers]
        strays = set()
        doubled = [0] * len(workers)  # hosts to which one worker holds more than one connection
        for name, host in stats1["hosts"].items():
            mine = collections.Counter(owner.get(port) for port in host["open"])
            for index, n in mine.items():
                if index is not None and n > 1:
                    doubled[index] += 1
            for port in host["open"]:
                if port in owner:
                    held[owner[port]].add(name)
                else:
                    strays.add(port)
        if any(doubled):
            self.notes.append(
                "hosts to which one worker holds 2+ connections, by worker: " + ", ".join(str(n) for n in doubled)
            )
        if strays:
            # Open for the simulators, held by no worker: what the kernel says of their client side.
            seen = client_sockets(strays)
            self.notes.append(
                f"{len(strays)} connections open for the simulators have a client socket in no worker: "
                + (", ".join(f"{n} {state}" for state, n in seen.most_common()) or "none left in /proc/net/tcp")
            )
        per_host, per_host_net, per_collection = [], [], []
        for index, worker in enumerate(workers):
            cpu = cpu1[index] - cpu0[index]
            hosts = len(held[index])
            per_host.append(rss[index] / max(hosts, 1))
            per_host_net.append((rss[index] - baseline) / max(hosts, 1))
            per_collection.append(1e3 * cpu / max(answers[index], 1))
            self.notes.append(
                f"worker {index} (pid {worker.pid}): RSS {rss[index]} KiB, connections to {hosts} hosts, "
                f"{answers[index]} collections answered in the windows, {cpu:.2f} s CPU"
            )
        if unattributed:
            self.notes.append(f"{unattributed} answers on connections closed before the end (not attributed)")
        hosts_held = [len(h) for h in held]
        self.add(
            Figure(
                "worker memory per host (RSS / hosts it holds a connection to), each worker",
                per_host,
                "KiB",
                f"VmRSS at the end of the windows / hosts with an open connection from that worker ({hosts_held})",
            )
        )
        self.add(
            Figure(
                "worker memory per host, less a worker with no server, each worker",
                per_host_net,
                "KiB",
                f"(VmRSS - {baseline} KiB, a headless worker with 0 servers on the same database) / hosts held, "
                "as the 1,000-host figure",
                target="<= 60 KiB",
                met=max(per_host_net) <= 60,
            )
        )
        self.add(
            Figure(
                "worker CPU per collection, each worker",
                per_collection,
                "ms",
                "utime+stime (/proc/PID/stat) over the windows / the collections its connections answered "
                "(the simulators' count); idle costs (keepalives, polling, heartbeats) included",
            )
        )
        total = sum(cpu1) - sum(cpu0)
        self.raw["worker cpu total"] = total
        self.raw["answers"] = answers

    def sessions(self, before: dict, after: dict, when: str, *, figures: bool = True) -> None:
        open_now = collections.Counter(len(host["open"]) for host in after["hosts"].values())
        made = sum(
            host["connections_made"] - before["hosts"][name]["connections_made"]
            for name, host in after["hosts"].items()
        )
        sessions = sum(host["sessions"] - before["hosts"][name]["sessions"] for name, host in after["hosts"].items())
        shape = ", ".join(f"{n} hosts with {k}" for k, n in sorted(open_now.items()))
        counts = [len(host["open"]) for host in after["hosts"].values()]
        text = (
            f"SSH connections open per host {when}: {shape} (mean {statistics.mean(counts):.2f}); "
            f"opened meanwhile: {made} connections, {sessions} probe sessions"
        )
        self.notes.append(text)
        say("  " + text)
        if figures:
            self.add(
                Figure(
                    "SSH connections per host at the end, as the simulators see them (min / max)",
                    [min(counts), max(counts)],
                    "",
                    text,
                    target="1",
                    met=max(counts) <= 1,
                    note=f"{min(counts)} / {max(counts)} (mean {statistics.mean(counts):.2f}); {shape}",
                )
            )
            self.add(
                Figure(
                    "connections / probe sessions opened during the windows, all hosts",
                    [made, sessions],
                    "",
                    "accepted connections and probe sessions (sim_host.py counters), end minus start of the windows",
                    note=f"{made} / {sessions}",
                )
            )

    # -- the dashboard ----------------------------------------------------------------

    def run_dashboard(self) -> None:
        count = self.args.hosts
        say(f"== dashboard, {count} servers (tests/tui/bench_dashboard.py {count}) ==")
        script = harness.ROOT / "tests" / "tui" / "bench_dashboard.py"
        repaint, narrow, widen = [], [], []
        for _ in range(self.args.dashboard_repeats):
            out = run_timed([sys.executable, str(script), str(count)], timeout=600, cwd=harness.ROOT)
            if out.returncode != 0:
                raise RuntimeError(f"bench_dashboard failed: {out.output[-1500:]}")
            repaint.append(float(re.search(rf"all {count} rows changed at once: ([\d.]+) ms", out.output).group(1)))
            narrow.append(
                float(re.search(r"filter keystroke, \d+ rows to \d+: median ([\d.]+) ms", out.output).group(1))
            )
            widen.append(float(re.search(r"filter keystroke \(backspace\).*: median ([\d.]+) ms", out.output).group(1)))
            say(f"  repaint {repaint[-1]} ms, filter keystroke {narrow[-1]} / {widen[-1]} ms (load {loadavg()})")
        self.raw["bench_dashboard output"] = out.output
        for label, values, how in (
            (
                f"dashboard repaint, {count:,} servers all changed",
                repaint,
                f"bench_dashboard.py: CPU time of show_rows({count} changed rows) + the repaint (run_test, 160x50)",
            ),
            (
                f"dashboard filter keystroke, {count:,} servers, narrowing",
                narrow,
                "bench_dashboard.py: CPU time of one key ('d': the db-* third of the rows) in the filter box + "
                "the repaint; median of 10 per run",
            ),
            (
                f"dashboard filter keystroke, {count:,} servers, backspace to all rows",
                widen,
                "bench_dashboard.py: the same for backspace (every row shown again); median of 10 per run",
            ),
        ):
            self.add(Figure(label, values, "ms", how, target="<= 50 ms", met=statistics.median(values) <= 50))

    # -- the table --------------------------------------------------------------------

    def table(self) -> str:
        a = self.args
        lines = [
            "",
            f"fleettop scale-out -- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
            f"{a.hosts} simulated hosts, {a.workers} headless workers (concurrency {a.concurrency}), interval "
            f"{a.interval} s, {a.windows} windows; load average at start {self.load_start}, "
            f"in the run {' | '.join(self.loads)}, at end {loadavg()}",
            "",
            f"| {'figure':<84} | {'median':>11} | {'min':>11} | {'n':>2} | {'target':<26} | {'met':<3} |",
            f"|{'-' * 86}|{'-' * 13}|{'-' * 13}|{'-' * 4}|{'-' * 28}|{'-' * 5}|",
        ]
        for f in self.figures:
            met = "" if f.met is None else ("yes" if f.met else "NO")
            if f.unit == "":
                value, best, target = f.note, "", f.target
            else:
                value, best, target = fmt(f.median, f.unit), fmt(f.best, f.unit), f.target
            n = "" if f.unit == "" else len(f.values)  # min / max or a pair: not repeats
            lines.append(f"| {f.label:<84} | {value:>11} | {best:>11} | {n:>2} | {target:<26} | {met:<3} |")
        lines += ["", "How each figure was measured:"]
        lines += [f"- {f.label}: {f.how}" for f in self.figures]
        lines += ["", *[f"Note: {note}" for note in self.notes]]
        return "\n".join(lines)


def _ts(epoch: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="500 hosts, 20 s interval, one collect-all, one TUI run")
    parser.add_argument("--hosts", type=int, help="simulated hosts (default 5000; --quick 500)")
    parser.add_argument("--interval", type=int, help="seconds between collections (default 60; --quick 20)")
    parser.add_argument(
        "--sims", type=int, help=f"simulator processes (default one per {HOSTS_PER_SIM} hosts, at least 2)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=50, help="worker.concurrency (default 50)")
    parser.add_argument("--windows", type=int, default=2, help="intervals measured (default 2)")
    parser.add_argument("--warmup", type=int, default=1, help="intervals after the first round (default 1)")
    parser.add_argument("--collect-repeats", type=int, help="warm collect-alls (default 3; --quick 1)")
    parser.add_argument("--dashboard-repeats", type=int, help="bench_dashboard.py runs (default 3; --quick 1)")
    parser.add_argument("--only", nargs="*", choices=["fleet", "dashboard"], help="run only these parts")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON too")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs)")
    parser.add_argument("--spy", type=Path, metavar="DIR", help="py-spy worker 0 for one interval of the windows")
    args = parser.parse_args(argv)
    args.hosts = args.hosts or (500 if args.quick else 5000)
    args.interval = args.interval or (20 if args.quick else 60)
    args.collect_repeats = args.collect_repeats or (1 if args.quick else 3)
    args.dashboard_repeats = args.dashboard_repeats or (1 if args.quick else 3)
    if args.interval < 10:
        parser.error("--interval: fleettop's minimum is 10 s")
    parts = args.only or ["fleet", "dashboard"]
    bench = ScaleOut(args)
    import fleettop

    harness.compile_package(Path(fleettop.__file__).parent)
    started = time.monotonic()
    try:
        if "fleet" in parts:
            bench.run_fleet()
        if "dashboard" in parts:
            bench.run_dashboard()
    finally:
        print(bench.table())
        print(f"\n(scale-out bench took {time.monotonic() - started:.0f} s; scratch {bench.scratch})", flush=True)
        if args.json:
            args.json.write_text(
                json.dumps(
                    [{**f.__dict__, "median": f.median, "min": f.best} for f in bench.figures]
                    + [
                        {
                            "notes": bench.notes,
                            "per_interval_sample": dict(list(bench.raw.get("per_interval", {}).items())[:5]),
                        }
                    ],
                    indent=2,
                )
            )
        if not args.keep:
            shutil.rmtree(bench.scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
