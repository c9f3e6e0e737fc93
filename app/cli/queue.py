"""`fleettop queue stats|pause|resume|clean` and `fleettop cache clear`."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from fleettop.cli.collect import NOBODY_ELSE
from fleettop.cli.output import one_line_errors
from fleettop.config import LoadedConfig
from fleettop.domain import QueueStats
from fleettop.errors import FleettopError
from fleettop.redis_server import outlives_this_process


@one_line_errors
async def cmd_queue(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    if args.action == "stats":
        from fleettop.cli.attached import attach

        async with attach(loaded.settings) as attached:
            stats = None if attached is None else await attached.stats()
        if stats is not None:
            _print_stats(args, stats)
            return 0
    from fleettop import logs
    from fleettop.wiring import open_service

    logs.configure(sys.stderr, logging.WARNING)
    async with open_service(loaded, worker=False) as service:
        if args.action == "stats":
            _print_stats(args, await service.stats())
        elif args.action in ("pause", "resume") and not outlives_this_process(loaded.settings):
            # The embedded Redis, and the pause flag in it, end with this command: a pause
            # would be undone at once, and nothing can be paused.
            if args.action == "pause":
                raise FleettopError(
                    f"not paused: {NOBODY_ELSE}, which stops with this command (start `fleettop` or `fleettop --headless` first)"
                )
            print(json.dumps({"paused": False}) if args.json else f"not paused: {NOBODY_ELSE}, so nothing is paused")
        elif args.action in ("pause", "resume"):
            await (service.pause() if args.action == "pause" else service.resume())
            paused = args.action == "pause"
            print(json.dumps({"paused": paused}) if args.json else ("paused" if paused else "resumed"))
        else:
            removed = (await service.clean()).total
            print(
                json.dumps({"removed": removed})
                if args.json
                else f"removed {removed} finished run{'s' if removed != 1 else ''} and job records"
            )
    return 0


def _print_stats(args: argparse.Namespace, stats: QueueStats) -> None:
    if args.json:
        print(json.dumps(stats.model_dump()))
        return
    for key, value in stats.model_dump(exclude={"workers"}).items():
        print(f"{key:<10} {str(value).lower() if isinstance(value, bool) else value}")
    print(f"{'workers':<10} {len(stats.workers)}")
    if stats.workers:
        width = max(len(worker.id) for worker in stats.workers)
        print(f"  {'id':<{width}}  {'host':<16} {'pid':>7}  {'servers':>7}  {'connections':>11}")
        for worker in stats.workers:
            # A process outside the ring (`collect --wait` with no worker) collects only by hand.
            servers = worker.servers if worker.scheduling else "manual"
            print(f"  {worker.id:<{width}}  {worker.host:<16} {worker.pid:>7}  {servers:>7}  {worker.connections:>11}")


@one_line_errors
async def cmd_cache(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    from fleettop import logs
    from fleettop.wiring import open_service

    logs.configure(sys.stderr, logging.WARNING)
    async with open_service(loaded, worker=False) as service:
        removed = await service.clear_cache()
    print(f"cleared {removed} cached key{'s' if removed != 1 else ''}")
    return 0
