"""The delivery loop every worker runs: the alert outbox (fleettop.store.alerts) to apprise.

Each tick claims what is due (the oldest waited `notify.group_wait`), sends one message per
URL gathering the round's alerts, and records the outcome. A failed delivery is logged in one
line, tried again with backoff (NOTIFY_ATTEMPTS in all) and then kept as failed, with its
error shown by `fleettop alerts` and the TUI. Nothing here stops the worker.
"""

from __future__ import annotations

import asyncio
import logging
import typing as t
from datetime import UTC, datetime, timedelta

from fleettop.alerting import message_title
from fleettop.config import Settings
from fleettop.store.alerts import Delivery
from fleettop.store.repo import Repository
from fleettop.timing import scaled

if t.TYPE_CHECKING:
    from fleettop.notify import Target

log = logging.getLogger("fleettop.notify")

TICK_S = scaled(1.0)
LEASE = timedelta(seconds=120)  # a claim older than this: its worker died before it finished
NOTIFY_ATTEMPTS = 5
RETRY_FIRST_S = 10.0
RETRY_MAX_S = 600.0


def retry_in(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: 10, 20, 40, ... at most 600."""
    return scaled(min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (attempts - 1)))


class Notifier:
    def __init__(self, settings: Settings, repo: Repository):
        self._settings = settings
        self._repo = repo
        from fleettop.notify import targets  # apprise loads ~190 plugins: only where it sends

        self._targets = {target.fingerprint: target for target in targets(settings.notify.urls)}
        for target in self._targets.values():
            target.check()  # a URL apprise cannot use stops the worker's start, in one line

    async def run(self) -> None:
        """Until cancelled."""
        while True:
            try:
                await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away: the rows wait for the next tick
                log.warning(
                    "cannot deliver notifications now: %s", (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                )
            await asyncio.sleep(TICK_S)

    async def deliver_due(self) -> int:
        """One round: how many messages were sent."""
        group_wait = timedelta(seconds=scaled(self._settings.notify.group_wait))
        deliveries = await self._repo.claim_notifications(group_wait, LEASE, list(self._targets))
        if not deliveries:
            return 0
        outcomes = await asyncio.gather(*(self._send(delivery) for delivery in deliveries))
        return sum(outcomes)

    async def _send(self, delivery: Delivery) -> bool:
        target = self._targets[delivery.target]  # claimed for this worker's URLs only
        error = await target.send(message_title(delivery.kinds), "\n".join(delivery.lines), delivery.kinds)
        if error is None:
            await self._repo.delivered(delivery.ids)
            log.info("notified %s: %d alert event(s)", target.shown, len(delivery.ids))
            return True
        if delivery.attempts >= NOTIFY_ATTEMPTS:
            log.warning(
                "notify %s failed for good after %d attempts (%d alert event(s)): %s",
                target.shown,
                delivery.attempts,
                len(delivery.ids),
                error,
            )
            await self._repo.not_delivered(delivery.ids, error, None)
            return False
        delay = retry_in(delivery.attempts)
        log.warning(
            "notify %s failed (attempt %d/%d, again in %.0fs): %s",
            target.shown,
            delivery.attempts,
            NOTIFY_ATTEMPTS,
            delay,
            error,
        )
        await self._repo.not_delivered(delivery.ids, error, datetime.now(UTC) + timedelta(seconds=delay))
        return False


async def send_test(settings: Settings, origin: str) -> list[tuple[Target, str | None]]:
    """`fleettop notify test`: one message to every URL; each with None (sent) or why not."""
    from fleettop.notify import targets

    every = targets(settings.notify.urls)
    results = await asyncio.gather(
        *(
            target.send("fleettop: test message", f"A test message from fleettop ({origin}): this URL works.")
            for target in every
        )
    )
    return list(zip(every, results))
