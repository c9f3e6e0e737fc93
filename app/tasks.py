"""Stopping asyncio tasks for sure."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

CANCEL_AGAIN_S = 0.1


async def cancel_and_wait(tasks: Iterable[asyncio.Task]) -> None:
    """Cancel the tasks and return once every one has ended.

    A task still running after a cancel is cancelled again: on Python 3.11,
    asyncio.wait_for (which redis-py's connect uses) drops a cancellation that lands
    as its inner call completes, and the task carries on as if never cancelled.
    """
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=CANCEL_AGAIN_S)
    await asyncio.gather(*tasks, return_exceptions=True)  # collect their outcomes: no "never retrieved"
