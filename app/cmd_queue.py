"""`fleettop --headless`, `fleettop collect`, `fleettop queue`, `fleettop cache`.

`collect` and `queue stats` are answered from Redis alone when a worker is attached
(fleettop.attached); the service, the database and the logging set-up are imported only
by the paths that use them.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from fleettop.config import LoadedConfig
from fleettop.domain import CollectOutcome, QueueStats
from fleettop.errors import FleettopError, UsageError
from fleettop.queue.control import job_timeout
from fleettop.redis_server import outlives_this_process
from fleettop.text import clean

if TYPE_CHECKING:
    from saq.job import Job

    from fleettop.attached import Attached

log = logging.getLogger("fleettop.headless")
PAUSED = "the queue is paused: run `fleettop queue resume` first"


def _one_line_errors(
    handler: Callable[[argparse.Namespace, LoadedConfig], Awaitable[int]],
) -> Callable[[argparse.Namespace, LoadedConfig], Coroutine[Any, Any, int]]:
    """Redis or the database failing in the middle of a command (gone while `collect
    --wait` waits): one line naming which, never a traceback."""

    @functools.wraps(handler)
    async def run(args: argparse.Namespace, loaded: LoadedConfig) -> int:
        try:
            return await handler(args, loaded)
        except RedisError as exc:
            raise FleettopError(f"redis: {_first_line(exc)}") from None
        except OSError as exc:
            raise FleettopError(_first_line(exc)) from None
        except Exception as exc:
            sqlalchemy = sys.modules.get("sqlalchemy.exc")  # never imported: not a database error
            if sqlalchemy is None or not isinstance(exc, sqlalchemy.SQLAlchemyError):
                raise
            from fleettop.store.db import describe_error

            raise FleettopError(f"database: {describe_error(exc)}") from None

    return run


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__

JSON_FIELDS = (
    "collected_at", "cpu_percent", "mem_percent", "swap_percent", "disk_percent", "disks",
    "load1", "load5", "load15", "procs", "uptime_s", "net_rx_bps", "net_tx_bps",
)


async def cmd_headless(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    """Worker and scheduler, logfmt lines on stdout, until SIGTERM, SIGINT or SIGHUP (its ssh
    session dropped); then a clean stop."""
    import signal

    from fleettop.queue import logs
    from fleettop.service import open_service

    logs.configure(sys.stdout)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with open_service(loaded, worker=True, demo=args.demo, long_running=True) as service:
            log.info("headless: %s, concurrency %d", service.redis.describe(), loaded.settings.worker.concurrency)
            if loaded.missing_note:
                log.info("%s", loaded.missing_note)
            await stop.wait()
            log.info("stopping: jobs in flight get %gs to finish, the rest go back to the queue", loaded.settings.worker.shutdown_grace)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
    log.info("stopped")
    return 0


@_one_line_errors
async def cmd_collect(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    if args.names and args.all:
        raise UsageError("server names and --all cannot be combined: give one or the other")
    if not args.names and not args.all:
        raise UsageError("name the servers to collect, or give --all")
    from fleettop.attached import attach

    logging.getLogger().setLevel(logging.ERROR)  # as logs.configure(stderr, ERROR), without its import
    async with attach(loaded.settings) as attached:
        if attached is not None and (servers := await attached.servers(args.names or None)) is not None:
            return await _collect_attached(args, loaded, attached, servers)
    return await _collect(args, loaded)


async def _collect_attached(args: argparse.Namespace, loaded: LoadedConfig, attached: Attached, servers: list[tuple[int, str]]) -> int:
    """`collect` with a worker attached and the server list in Redis: no database."""
    if not servers:
        print("no enabled servers")
        return 0
    if args.wait and await attached.is_paused():
        raise FleettopError(PAUSED)
    ids = [server_id for server_id, _ in servers]
    queued = await attached.collect_now(servers, everything=not args.names)
    if not args.wait:
        print(_queued(queued, len(servers)))
        return 0
    try:
        outcomes = await attached.wait_outcomes(ids, timeout=_patience(loaded), on_retry=_retrying(dict(servers)))
    except TimeoutError:
        raise FleettopError(_TIMED_OUT) from None
    if outcomes is None:  # a failure (or a sample Redis lacks): the run history answers
        from fleettop.queue import logs
        from fleettop.service import open_service

        logs.configure(sys.stderr, logging.ERROR)
        async with open_service(loaded, worker=False) as service:
            outcomes = await service.manual_outcomes(ids)
    return _report(args, [name for _, name in servers], outcomes)


async def _collect(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    """`collect` through the service: the database, and a worker of its own if none is attached."""
    from fleettop.queue import logs
    from fleettop.service import open_service

    logs.configure(sys.stderr, logging.ERROR)  # a failed collection is reported in the results
    async with open_service(loaded, worker=False) as service:
        servers = await service.resolve(args.names) if args.names else await service.repo.list_servers(enabled_only=True)
        if not servers:
            print("no enabled servers")
            return 0
        if args.wait and await service.is_paused():
            raise FleettopError(PAUSED)
        if not args.wait and not outlives_this_process(loaded.settings):
            raise FleettopError(f"not queued: {_NOBODY}, which stops with this command (use --wait, or start `fleettop` or `fleettop --headless`)")
        queued = await service.collect_servers(servers, everything=not args.names)
        if not args.wait:
            print(_queued(queued, len(servers)))
            if not await service.workers_alive():
                print("fleettop: no worker is running: start `fleettop` or `fleettop --headless`", file=sys.stderr)
            return 0
        if not await service.workers_alive():
            await service.start_worker(schedule=False)
        try:
            await service.wait_collected(servers, timeout=_patience(loaded), on_retry=_retrying({s.id: s.name for s in servers}))
        except TimeoutError:
            raise FleettopError(_TIMED_OUT) from None
        outcomes = await service.manual_outcomes([server.id for server in servers])
        await service.stop_worker()
    return _report(args, [server.name for server in servers], outcomes)


_NOBODY = "no other fleettop process is running on the embedded Redis"
_TIMED_OUT = "timed out waiting for the collections (is a worker stuck?)"


def _retrying(names: dict[int, str]) -> Callable[[Job], None]:
    """Tell, on stderr as it happens, of each failed attempt of a collection being waited for
    that will be retried: the wait is not silent for its backoffs."""

    def tell(job: Job) -> None:
        failure = clean(job.meta["failure"])
        name = names.get((job.kwargs or {}).get("server_id", -1), "")
        if name and not failure.startswith(name):
            failure = f"{name}: {failure}"
        print(f"attempt {job.attempts} of {job.retries} failed: {failure}, retrying in {job.retry_delay:g} s", file=sys.stderr, flush=True)

    return tell


def _queued(queued: int, count: int) -> str:
    return f"queued {queued} of {count} server{'s' if count != 1 else ''}"


def _report(args: argparse.Namespace, names: list[str], outcomes: list[CollectOutcome]) -> int:
    results = [_result(name, outcome) for name, outcome in zip(names, outcomes)]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            print(clean(_line(result)))  # server names and errors come from the database or Redis
    return 0 if all(result["status"] == "ok" for result in results) else 1


def _patience(loaded: LoadedConfig) -> float:
    """Every attempt timing out, every backoff waited, and room for a backlog."""
    worker = loaded.settings.worker
    backoffs = sum(worker.retry_backoff * 2**n for n in range(worker.retries - 1))
    return worker.retries * job_timeout(loaded.settings) + backoffs + 60


def _result(name: str, outcome: CollectOutcome) -> dict[str, Any]:
    result: dict[str, Any] = {"server": name, "status": outcome.status, "error": outcome.error}
    sample = outcome.sample.model_dump(mode="json") if outcome.sample else {}
    for field in JSON_FIELDS:
        result[field] = sample.get(field)
    if result["disks"] is not None:
        result["disks"] = [
            {key: disk[key] for key in ("mount", "percent", "used_bytes", "total_bytes")} for disk in result["disks"]
        ]
    return result


def _line(result: dict[str, Any]) -> str:
    if result["status"] != "ok":
        return f"{result['server']}  failed  {result['error']}"

    def shown(value: float | None, form: str = ".1f", unit: str = "%") -> str:
        return "-" if value is None else format(value, form) + unit

    return (
        f"{result['server']}  ok  cpu {shown(result['cpu_percent'])}  ram {shown(result['mem_percent'])}"
        f"  disk {shown(result['disk_percent'])}  load {shown(result['load1'], '.2f', '')}  at {result['collected_at'] or '-'}"
    )


@_one_line_errors
async def cmd_queue(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    if args.action == "stats":
        from fleettop.attached import attach

        async with attach(loaded.settings) as attached:
            stats = None if attached is None else await attached.stats()
        if stats is not None:
            _print_stats(args, stats)
            return 0
    from fleettop.queue import logs
    from fleettop.service import open_service

    logs.configure(sys.stderr, logging.WARNING)
    async with open_service(loaded, worker=False) as service:
        if args.action == "stats":
            _print_stats(args, await service.stats())
        elif args.action in ("pause", "resume") and not outlives_this_process(loaded.settings):
            # The embedded Redis, and the pause flag in it, end with this command: a pause
            # would be undone at once, and nothing can be paused.
            if args.action == "pause":
                raise FleettopError(f"not paused: {_NOBODY}, which stops with this command (start `fleettop` or `fleettop --headless` first)")
            print(json.dumps({"paused": False}) if args.json else f"not paused: {_NOBODY}, so nothing is paused")
        elif args.action in ("pause", "resume"):
            await (service.pause() if args.action == "pause" else service.resume())
            paused = args.action == "pause"
            print(json.dumps({"paused": paused}) if args.json else ("paused" if paused else "resumed"))
        else:
            removed = await service.clean()
            print(json.dumps({"removed": removed}) if args.json else f"removed {removed} finished run{'s' if removed != 1 else ''} and job records")
    return 0


def _print_stats(args: argparse.Namespace, stats: QueueStats) -> None:
    if args.json:
        print(json.dumps(stats.model_dump()))
    else:
        for key, value in stats.model_dump().items():
            print(f"{key:<10} {str(value).lower() if isinstance(value, bool) else value}")


@_one_line_errors
async def cmd_cache(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    from fleettop.queue import logs
    from fleettop.service import open_service

    logs.configure(sys.stderr, logging.WARNING)
    async with open_service(loaded, worker=False) as service:
        removed = await service.cache.clear()
        await service.repo.audit("cache.clear", "cache", f"{removed} keys")
    print(f"cleared {removed} cached key{'s' if removed != 1 else ''}")
    return 0
