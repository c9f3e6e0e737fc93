"""Notifications through apprise: the one module that imports it.

Each `notify.urls` entry is a Target: its URL (it may embed a password or token, so it is
never logged, stored or shown: the store keeps its fingerprint, messages its masked form)
and its own Apprise object, so the outcome of each URL is known and retried on its own.
apprise's async API runs the blocking send in its own thread pool: the worker's loop keeps
running meanwhile (notes/alerting.md, measured).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import apprise

from fleettop.alerting import EventKind, fingerprint
from fleettop.errors import UsageError

# apprise narrates every attempt (and at debug, payloads): the worker logs one line per
# delivery itself, from apprise's own warnings, which name the host and never the URL.
logging.getLogger("apprise").propagate = False

SEND_TIMEOUT_S = 10.0
_TYPES = {
    EventKind.FIRING: apprise.NotifyType.FAILURE,
    EventKind.REMINDER: apprise.NotifyType.WARNING,
    EventKind.RESOLVED: apprise.NotifyType.SUCCESS,
}


class NotifyConfigError(UsageError):
    """A `notify.urls` entry apprise cannot use."""


@dataclass(frozen=True)
class Target:
    url: str
    index: int  # its place in notify.urls, for messages

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.url)

    @cached_property
    def _apprise(self) -> apprise.Apprise:
        sender = apprise.Apprise()
        if not sender.add(self.url):
            raise NotifyConfigError(f"notify.urls[{self.index}]: not a URL apprise can send to ({self.shown})")
        return sender

    @property
    def shown(self) -> str:
        """The URL with its secrets masked and its options left out."""
        sender = apprise.Apprise()
        if sender.add(self.url):
            return str(next(iter(sender)).url(privacy=True)).split("?", 1)[0]
        scheme = self.url.split("://", 1)[0] if "://" in self.url else "?"
        return f"{scheme[:20]}://…"

    def check(self) -> None:
        self._apprise  # noqa: B018 -- builds it, or raises NotifyConfigError

    async def send(
        self, title: str, body: str, kinds: Sequence[EventKind] = (), *, timeout: float = SEND_TIMEOUT_S
    ) -> str | None:
        """Deliver one message; None when sent, else why not (one line, no secret)."""
        notify_type = next(
            (_TYPES[kind] for kind in (EventKind.FIRING, EventKind.REMINDER, EventKind.RESOLVED) if kind in kinds),
            apprise.NotifyType.INFO,
        )
        try:
            result = await self._apprise.async_notify(body=body, title=title, notify_type=notify_type, timeout=timeout)
        except NotifyConfigError as exc:
            return str(exc)
        except Exception as exc:  # a plugin's own bug must not stop the worker
            return f"{type(exc).__name__} in apprise"
        if result.status == apprise.AppriseResultStatus.SUCCESS:
            return None
        warnings = [entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR", "CRITICAL")]
        reason = warnings[-1] if warnings else result.status.name.lower()
        return f"{result.status.name.lower()}: {reason}"


def targets(urls: Sequence[str]) -> list[Target]:
    return [Target(url, index) for index, url in enumerate(urls)]
