"""Adding, editing and removing servers, each with its audit entry.

One implementation for both front ends: `fleettop servers` (which opens only the
database) and FleetService (the TUI's form), which then tells the workers itself.
Servers under `servers:` in the config file are changed in that file, not here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleettop.config import ServerConfig, Settings
from fleettop.domain import Server
from fleettop.errors import FleettopError, UnknownServer, UsageError
from fleettop.store.repo import KEEP, Repository

if TYPE_CHECKING:
    from fleettop.secrets import SecretBox

THRESHOLDS = ("cpu", "ram", "disk")


class ServerAdmin:
    def __init__(self, repo: Repository, settings: Settings, secrets: SecretBox, config_path: Path):
        self.repo = repo
        self.settings = settings
        self.config_path = config_path
        self._secrets = secrets

    async def get(self, name: str) -> Server:
        server = await self.repo.get_server(name)
        if server is None:
            raise UnknownServer(name)
        return server

    async def check_new(self, name: str) -> None:
        existing = await self.repo.get_server(name)
        if existing is not None:
            where = f" (defined in {self.config_path})" if existing.source == "config" else ""
            raise UsageError(f"server {name!r} already exists{where}")

    def check_editable(self, server: Server) -> None:
        if server.source == "config":
            raise UsageError(
                f"server {server.name!r} is defined in {self.config_path}: change it there (only its password can be set here)"
            )

    async def check_removable(self, name: str) -> tuple[Server, int]:
        """The server and how many samples it has, if it may be removed here."""
        server = await self.get(name)
        if server.source == "config":
            raise UsageError(
                f"server {name!r} is defined in {self.config_path}: take it out of the file first "
                "(it is then kept as a database server, which can be removed)"
            )
        return server, await self.repo.count_samples(server.id)

    async def add(self, cfg: ServerConfig, secret: str | None = None) -> Server:
        """A new database server; `secret` (a password or key passphrase) is stored encrypted."""
        await self.check_new(cfg.name)
        blob = self._secrets.encrypt(secret) if secret else None
        try:
            server = await self.repo.add_server(cfg, defaults=self.settings.defaults, secret=blob)
        except FleettopError as exc:  # a race with another process adding the same name
            raise UsageError(str(exc)) from None
        await self.repo.audit("server.add", server.name, describe(server))
        return server

    async def edit(self, name: str, cfg: ServerConfig | None, secret: str | None = None) -> tuple[Server, str]:
        """Replace a server's settings (cfg=None: only its secret). secret=None keeps the
        stored one, unless the server now authenticates by agent: then it is dropped.
        Returns the server and what changed, in words."""
        current = await self.get(name)
        if cfg is None:
            cfg = ServerConfig.model_validate(fields_of(current))
        else:
            self.check_editable(current)
        stored: bytes | None | object = KEEP
        if secret:
            stored = self._secrets.encrypt(secret)
        elif cfg.auth == "agent" and current.has_secret:
            stored = None  # nothing to decrypt any more: no password left lying around
        try:
            updated = await self.repo.update_server(name, cfg, defaults=self.settings.defaults, secret=stored)
        except FleettopError as exc:
            raise UsageError(str(exc)) from None
        changes = differences(current, updated)
        if secret:
            changes.append("secret replaced")
        elif stored is None:
            changes.append("secret removed")
        detail = ", ".join(changes) or "no change"
        await self.repo.audit("server.edit", updated.name, detail)
        return updated, detail

    async def remove(self, server: Server, samples: int) -> None:
        """Delete a database server with its history: the server and its sample count as
        check_removable returned them (a command asks for confirmation in between)."""
        if not await self.repo.remove_server(server.name):
            raise UnknownServer(server.name)
        await self.repo.audit("server.remove", server.name, f"removed with {samples} samples")


def fields_of(server: Server) -> dict[str, Any]:
    """A stored server's settings as ServerConfig fields (its thresholds resolved)."""
    return {
        "name": server.name, "host": server.host, "port": server.port, "username": server.username,
        "transport": server.transport, "auth": server.auth, "key_file": server.key_file,
        "interval": server.interval, "enabled": server.enabled, "thresholds": server.thresholds.model_dump(),
    }


def describe(server: Server) -> str:
    user = f"{server.username}@" if server.username else ""
    t = server.thresholds
    return (
        f"{server.transport} {user}{server.host}:{server.port}, auth {server.auth}, every {server.interval}s, "
        f"thresholds cpu {t.cpu:g} ram {t.ram:g} disk {t.disk:g}, {'enabled' if server.enabled else 'disabled'}"
    )


def differences(before: Server, after: Server) -> list[str]:
    watched = ("name", "host", "port", "username", "transport", "auth", "key_file", "interval", "enabled")
    changes = [
        f"{key} {getattr(before, key)} -> {getattr(after, key)}" for key in watched if getattr(before, key) != getattr(after, key)
    ]
    for key in THRESHOLDS:
        old, new = getattr(before.thresholds, key), getattr(after.thresholds, key)
        if old != new:
            changes.append(f"{key} threshold {old:g} -> {new:g}")
    return changes
