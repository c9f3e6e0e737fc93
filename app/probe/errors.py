"""The one exception a collection raises, classified for retries and for the dashboard."""

from __future__ import annotations

from typing import Literal

from app.errors import FleettopError

CollectErrorKind = Literal[
    "unreachable", "auth_failed", "hostkey_unknown", "hostkey_changed", "timeout", "command_failed", "unparsable"
]


class CollectError(FleettopError):
    """A collection that failed; str() is one line naming the host, `.kind` says why."""

    def __init__(self, kind: CollectErrorKind, where: str, detail: str):
        detail = " ".join(detail.split()) or kind.replace("_", " ")
        super().__init__(f"{where}: {detail}")
        self.kind = kind
