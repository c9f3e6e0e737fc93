"""Where the wall time of one fleettop command goes, phase by phase, without touching app/:
`python tests/bench/phases.py --config CFG collect --all --wait` runs fleettop.cli.main in this
process with timing wrappers around the service's steps, then prints (on stderr) each
step's calls, total time and when it first started / last ended (ms since start)."""

from __future__ import annotations

import atexit
import functools
import inspect
import sys
import time

T0 = time.perf_counter()
STEPS: dict[str, list[float]] = {}  # name -> [calls, total s, first start, last end]


def _record(name: str, started: float) -> None:
    ended = time.perf_counter()
    step = STEPS.setdefault(name, [0, 0.0, started - T0, 0.0])
    step[0] += 1
    step[1] += ended - started
    step[3] = ended - T0


def wrap(owner, attribute: str, name: str | None = None) -> None:
    original = getattr(owner, attribute)
    label = name or f"{getattr(owner, '__name__', owner)}.{attribute}"
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                _record(label, started)
    else:

        @functools.wraps(original)
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                _record(label, started)

    setattr(owner, attribute, timed)


def report() -> None:
    total = time.perf_counter() - T0
    print(f"\n{'step':<46} {'calls':>6} {'total ms':>9} {'first ms':>9} {'last ms':>9}", file=sys.stderr)
    for name, (calls, spent, first, last) in sorted(STEPS.items(), key=lambda item: item[1][2]):
        print(f"{name:<46} {calls:>6} {1000 * spent:>9.1f} {1000 * first:>9.1f} {1000 * last:>9.1f}", file=sys.stderr)
    print(f"{'(whole run in this process)':<46} {'':>6} {1000 * total:>9.1f}", file=sys.stderr)


def main(argv: list[str]) -> int:
    started = time.perf_counter()
    import fleettop.cli as cli

    _record("import fleettop.cli (+config, pydantic, yaml)", started)
    started = time.perf_counter()
    import fleettop.cli.collect as collect

    _record("import fleettop.cli.collect (service, SAQ, SQLA, ssh)", started)
    from fleettop import config, service, wiring
    from fleettop.queue import control, worker
    from fleettop.store import db, repo

    wrap(config, "load", "config.load")
    wrap(wiring, "open_database", "open_database (engine + migrate)")
    wrap(db, "migrate", "db.migrate")
    wrap(repo.Repository, "sync_config_servers")
    wrap(repo.Repository, "list_servers")
    wrap(worker.Lanes, "connect", "Lanes.connect")
    wrap(service.FleetService, "is_paused")
    wrap(service.FleetService, "collect_now")
    wrap(control, "enqueue_manual", "control.enqueue_manual (per server)")
    wrap(service.FleetService, "workers_alive")
    wrap(service.FleetService, "start_worker")
    wrap(service.FleetService, "wait_collected")
    wrap(service.FleetService, "manual_outcomes")
    wrap(service.FleetService, "stop_worker")
    wrap(collect, "_result", "collect._result (per server)")
    wrap(collect, "cmd_collect")
    import fleettop.cli.queue as queue_cli

    wrap(queue_cli, "cmd_queue")
    import fleettop.queue.runtime as runtime

    wrap(runtime, "collect", "jobs.collect (embedded worker)")
    atexit.register(report)
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
