"""`fleettop audit`: who changed what, newest last."""

from __future__ import annotations

import argparse
import json

from fleettop.cli.repository import open_repository
from fleettop.config import LoadedConfig
from fleettop.text import clean


async def cmd_audit(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    """The newest entries, printed oldest first as a log reads; each field one clean line
    (a target or detail holds names and text that users typed)."""
    async with open_repository(loaded) as repo:
        entries = list(reversed(await repo.audit_entries(args.limit)))
    if args.json:
        print(json.dumps([entry.model_dump(mode="json", exclude={"id"}) for entry in entries], indent=2))
        return 0
    if not entries:
        print("no audit entries")
        return 0
    rows = [
        (
            entry.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            clean(entry.actor),
            clean(entry.action),
            clean(entry.target),
            clean(entry.detail),
        )
        for entry in entries
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        print("  ".join([*(field.ljust(width) for field, width in zip(row, widths)), row[4]]).rstrip())
    return 0
