"""`fleettop --headless`: the worker and the scheduler without a screen."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from fleettop.config import LoadedConfig

log = logging.getLogger("fleettop.headless")


async def cmd_headless(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    """Worker and scheduler, logfmt lines on stdout, until SIGTERM, SIGINT or SIGHUP (its ssh
    session dropped); then a clean stop."""
    import signal

    from fleettop import logs
    from fleettop.wiring import bind_api, open_service

    logs.configure(sys.stdout)
    api = bind_api(loaded, args.listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with open_service(loaded, worker=True, demo=args.demo, long_running=True, api=api) as service:
            log.info("headless: %s, concurrency %d", service.redis.describe(), loaded.settings.worker.concurrency)
            if loaded.missing_note:
                log.info("%s", loaded.missing_note)
            await stop.wait()
            log.info(
                "stopping: jobs in flight get %gs to finish, the rest go back to the queue",
                loaded.settings.worker.shutdown_grace,
            )
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
    log.info("stopped")
    return 0
