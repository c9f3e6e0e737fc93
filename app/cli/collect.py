"""`fleettop collect`: queue collections ahead of the schedule, and wait for them with --wait.

Answered from Redis alone when a worker is attached (fleettop.cli.attached); the service,
the database and the logging set-up are imported only by the paths that use them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fleettop.cli.output import one_line_errors, sample_record
from fleettop.config import LoadedConfig
from fleettop.domain import CollectOutcome
from fleettop.errors import FleettopError, UsageError
from fleettop.queue.contract import job_timeout
from fleettop.redis_server import outlives_this_process
from fleettop.text import clean

if TYPE_CHECKING:
    from saq.job import Job

    from fleettop.cli.attached import Attached

PAUSED = "the queue is paused: run `fleettop queue resume` first"
# Said where the embedded Redis (and what is queued in it) ends with the command itself.
NOBODY_ELSE = "no other fleettop process is running on the embedded Redis"


@one_line_errors
async def cmd_collect(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    if sum(map(bool, (args.names, args.all, args.tag))) > 1:
        raise UsageError("server names, --all and --tag cannot be combined: give one of them")
    if not args.names and not args.all and not args.tag:
        raise UsageError("name the servers to collect, or give --all or --tag TAG")
    from fleettop.cli.attached import attach

    logging.getLogger().setLevel(logging.ERROR)  # as logs.configure(stderr, ERROR), without its import
    async with attach(loaded.settings) as attached:
        # The server list cached in Redis has no tags: --tag reads the database.
        if (
            attached is not None
            and not args.tag
            and (servers := await attached.servers(args.names or None)) is not None
        ):
            return await _collect_attached(args, loaded, attached, servers)
    return await _collect(args, loaded)


async def _collect_attached(
    args: argparse.Namespace, loaded: LoadedConfig, attached: Attached, servers: list[tuple[int, str]]
) -> int:
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
        from fleettop import logs
        from fleettop.wiring import open_service

        logs.configure(sys.stderr, logging.ERROR)
        async with open_service(loaded, worker=False) as service:
            outcomes = await service.manual_outcomes(ids)
    return _report(args, [name for _, name in servers], outcomes)


async def _collect(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    """`collect` through the service: the database, and a worker of its own if none is attached."""
    from fleettop import logs
    from fleettop.wiring import open_service

    logs.configure(sys.stderr, logging.ERROR)  # a failed collection is reported in the results
    async with open_service(loaded, worker=False) as service:
        servers = await service.resolve(args.names) if args.names else await service.enabled_servers(tag=args.tag)
        if not servers:
            print(f"no enabled server carries the tag {clean(args.tag)!r}" if args.tag else "no enabled servers")
            return 0
        if args.wait and await service.is_paused():
            raise FleettopError(PAUSED)
        if not args.wait and not outlives_this_process(loaded.settings):
            raise FleettopError(
                f"not queued: {NOBODY_ELSE}, which stops with this command (use --wait, or start `fleettop` or `fleettop --headless`)"
            )
        queued = await service.collect_servers(servers, everything=not args.names and not args.tag)
        if not args.wait:
            print(_queued(queued, len(servers)))
            if not await service.workers_alive():
                print("fleettop: no worker is running: start `fleettop` or `fleettop --headless`", file=sys.stderr)
            return 0
        if not await service.workers_alive():
            await service.start_worker(schedule=False)
        try:
            await service.wait_collected(
                servers, timeout=_patience(loaded), on_retry=_retrying({s.id: s.name for s in servers})
            )
        except TimeoutError:
            raise FleettopError(_TIMED_OUT) from None
        outcomes = await service.manual_outcomes([server.id for server in servers])
        await service.stop_worker()
    return _report(args, [server.name for server in servers], outcomes)


_TIMED_OUT = "timed out waiting for the collections (is a worker stuck?)"


def _retrying(names: dict[int, str]) -> Callable[[Job], None]:
    """Tell, on stderr as it happens, of each failed attempt of a collection being waited for
    that will be retried: the wait is not silent for its backoffs."""

    def tell(job: Job) -> None:
        failure = clean(job.meta["failure"])
        name = names.get((job.kwargs or {}).get("server_id", -1), "")
        if name and not failure.startswith(name):
            failure = f"{name}: {failure}"
        print(
            f"attempt {job.attempts} of {job.retries} failed: {failure}, retrying in {job.retry_delay:g} s",
            file=sys.stderr,
            flush=True,
        )

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
    return {"server": name, "status": outcome.status, "error": outcome.error, **sample_record(outcome.sample)}


def _line(result: dict[str, Any]) -> str:
    if result["status"] != "ok":
        return f"{result['server']}  failed  {result['error']}"

    def shown(value: float | None, form: str = ".1f", unit: str = "%") -> str:
        return "-" if value is None else format(value, form) + unit

    return (
        f"{result['server']}  ok  cpu {shown(result['cpu_percent'])}  ram {shown(result['mem_percent'])}"
        f"  disk {shown(result['disk_percent'])}  load {shown(result['load1'], '.2f', '')}  at {result['collected_at'] or '-'}"
    )
