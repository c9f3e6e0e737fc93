"""`fleettop --headless`, `fleettop collect`, `fleettop queue`, `fleettop cache`."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from app.config import LoadedConfig
from app.domain import Server
from app.errors import FleettopError, UsageError
from app.queue import logs
from app.queue.jobs import job_timeout
from app.service import CollectOutcome, open_service

log = logging.getLogger("fleettop.headless")


def _one_line_errors(handler: Callable[[argparse.Namespace, LoadedConfig], Awaitable[int]]):
    """Redis or the database failing in the middle of a command (gone while `collect
    --wait` waits): one line naming which, never a traceback."""

    @functools.wraps(handler)
    async def run(args: argparse.Namespace, loaded: LoadedConfig) -> int:
        try:
            return await handler(args, loaded)
        except RedisError as exc:
            raise FleettopError(f"redis: {_first_line(exc)}") from None
        except SQLAlchemyError as exc:
            from app.store.db import describe_error

            raise FleettopError(f"database: {describe_error(exc)}") from None
        except OSError as exc:
            raise FleettopError(_first_line(exc)) from None

    return run


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__

JSON_FIELDS = (
    "collected_at", "cpu_percent", "mem_percent", "swap_percent", "disk_percent", "disks",
    "load1", "load5", "load15", "procs", "uptime_s", "net_rx_bps", "net_tx_bps",
)


async def cmd_headless(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    """Worker and scheduler, logfmt lines on stdout, until SIGTERM or SIGINT; then a clean stop."""
    logs.configure(sys.stdout)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with open_service(loaded, worker=True, demo=args.demo) as service:
            log.info("headless: %s, concurrency %d", service.redis.describe(), loaded.settings.worker.concurrency)
            await stop.wait()
            log.info("stopping: jobs in flight get %gs to finish, the rest go back to the queue", loaded.settings.worker.shutdown_grace)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("stopped")
    return 0


@_one_line_errors
async def cmd_collect(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    if bool(args.names) == bool(args.all):
        raise UsageError("name the servers to collect, or give --all")
    logs.configure(sys.stderr, logging.ERROR)  # a failed collection is reported in the results
    async with open_service(loaded, worker=False) as service:
        servers = await service.resolve(args.names) if args.names else await service.repo.list_servers(enabled_only=True)
        if not servers:
            print("no enabled servers")
            return 0
        if args.wait and await service.is_paused():
            raise FleettopError("the queue is paused: run `fleettop queue resume` first")
        queued = await service.collect_now(args.names or None)
        if not args.wait:
            print(f"queued {queued} of {len(servers)} server{'s' if len(servers) != 1 else ''}")
            if not await service.workers_alive():
                print("fleettop: no worker is running: start `fleettop` or `fleettop --headless`", file=sys.stderr)
            return 0
        if not await service.workers_alive():
            await service.start_worker(schedule=False)
        try:
            await service.wait_collected(servers, timeout=_patience(loaded))
        except asyncio.TimeoutError:
            raise FleettopError("timed out waiting for the collections (is a worker stuck?)") from None
        outcomes = await service.manual_outcomes(servers)
        results = [_result(server, outcome) for server, outcome in zip(servers, outcomes)]
        await service.stop_worker()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            print(_line(result))
    return 0 if all(result["status"] == "ok" for result in results) else 1


def _patience(loaded: LoadedConfig) -> float:
    """Every attempt timing out, every backoff waited, and room for a backlog."""
    worker = loaded.settings.worker
    backoffs = sum(worker.retry_backoff * 2**n for n in range(worker.retries - 1))
    return worker.retries * job_timeout(loaded.settings) + backoffs + 60


def _result(server: Server, outcome: CollectOutcome) -> dict[str, Any]:
    result: dict[str, Any] = {"server": server.name, "status": outcome.status, "error": outcome.error}
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

    def percent(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}%"

    return (
        f"{result['server']}  ok  cpu {percent(result['cpu_percent'])}  ram {percent(result['mem_percent'])}"
        f"  disk {percent(result['disk_percent'])}  load {result['load1']:.2f}  at {result['collected_at']}"
    )


@_one_line_errors
async def cmd_queue(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    logs.configure(sys.stderr, logging.WARNING)
    async with open_service(loaded, worker=False) as service:
        if args.action == "stats":
            stats = (await service.stats()).model_dump()
            if args.json:
                print(json.dumps(stats))
            else:
                for key, value in stats.items():
                    print(f"{key:<10} {str(value).lower() if isinstance(value, bool) else value}")
        elif args.action in ("pause", "resume"):
            await (service.pause() if args.action == "pause" else service.resume())
            paused = args.action == "pause"
            print(json.dumps({"paused": paused}) if args.json else ("paused" if paused else "resumed"))
        else:
            removed = await service.clean()
            print(json.dumps({"removed": removed}) if args.json else f"removed {removed} finished run{'s' if removed != 1 else ''} and job records")
    return 0


@_one_line_errors
async def cmd_cache(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    logs.configure(sys.stderr, logging.WARNING)
    async with open_service(loaded, worker=False) as service:
        removed = await service.cache.clear()
    print(f"cleared {removed} cached key{'s' if removed != 1 else ''}")
    return 0
