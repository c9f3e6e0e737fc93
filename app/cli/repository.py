"""The database as the commands that need no Redis open it: the repository and its servers."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fleettop.config import LoadedConfig, ServerConfig
from fleettop.domain import Server
from fleettop.errors import UnknownServer, UsageError
from fleettop.servers import add_first_run_localhost
from fleettop.store.alerts import AlertSetup
from fleettop.store.db import open_database, reporting_errors
from fleettop.store.repo import Repository


@asynccontextmanager
async def open_repository(loaded: LoadedConfig) -> AsyncIterator[Repository]:
    """The repository, with the config file's servers synced in (as at every start)."""
    database = await open_database(loaded.settings)
    try:
        async with reporting_errors(database):
            # With the alert setup: `servers remove` ends the server's alerts (a RESOLVED owed is queued).
            settings = loaded.settings
            repo = Repository(
                database, settings.defaults, settings.retention, AlertSetup.of(settings), groups=settings.groups
            )
            for note in await repo.sync_config_servers(loaded.settings.servers):
                print(f"fleettop: {note}", file=sys.stderr)
            await add_first_run_localhost(repo, loaded)
            yield repo
    finally:
        await database.close()


@contextlib.asynccontextmanager
async def remote_server(loaded: LoadedConfig, name: str) -> AsyncIterator[tuple[Repository, Server]]:
    """The repository and the named server, for a command about its host key (a local
    server has none); the database is closed after."""
    database = await open_database(loaded.settings)
    try:
        repository = Repository(
            database, loaded.settings.defaults, loaded.settings.retention, groups=loaded.settings.groups
        )
        server, _ = await find_server(loaded, repository, name)
        if server.transport == "local":
            raise UsageError(f"{server.name} uses the local transport: it has no host key")
        yield repository, server
    finally:
        await database.close()


async def find_server(loaded: LoadedConfig, repository: Repository, name: str) -> tuple[Server, bytes | None]:
    """The server and its encrypted secret; a server in the config file counts even before it is synced."""
    for cfg in loaded.settings.servers:
        if cfg.name == name:
            stored = await repository.get_server(name)
            secret = await repository.get_secret(stored.id) if stored else None
            return _from_config(cfg, stored.id if stored else 0), secret
    server = await repository.get_server(name)
    if server is None:
        raise UnknownServer(name)
    return server, await repository.get_secret(server.id) if server.has_secret else None


def _from_config(cfg: ServerConfig, server_id: int) -> Server:
    """The config entry as a server, under the id its stored secret (if any) is bound to."""
    fields = cfg.model_dump(exclude={"thresholds", "interval"})
    fields["key_file"] = str(cfg.key_file) if cfg.key_file else None
    return Server(id=server_id, source="config", **fields)
