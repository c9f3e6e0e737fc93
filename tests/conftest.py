"""Fixtures shared by every test area: settings in a private data_dir, and the
real services (Redis, PostgreSQL) the integration tests talk to.

Where a service is missing, a test that needs it is skipped on a developer's
machine and fails in CI (CI=true): a green CI run never hides a missing service.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

# The protocol's waits (intervals, retry backoffs, job heartbeats, sweeps, the reconcile) at a
# fifth of their seconds: fleettop.timing reads this once, when fleettop is first imported (so
# before any import of it below), and every fleettop subprocess inherits it. Tests compare with
# timing.scaled(...); FLEETTOP_TEST_TIME_SCALE=1 runs the suite on the real clock.
os.environ.setdefault("FLEETTOP_TEST_TIME_SCALE", "0.2")

from fleettop import config  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
PG_URL = os.environ.get("FLEETTOP_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FLEETTOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, url: str, default_port: int) -> str:
    if not _reachable(url, default_port):
        message = f"{name} is not reachable at {url}"
        if IN_CI:
            pytest.fail(message + " (CI=true: a missing service fails the run)")
        pytest.skip(message)
    return url


@pytest.fixture
def pg_url() -> str:
    return require_service("PostgreSQL", PG_URL, 5432)


async def _pg_admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_databases():
    """A factory of throwaway PostgreSQL databases (fleettop_<random>), all dropped at the end,
    so that parallel test runs never share tables."""
    created: list[str] = []

    def create() -> str:
        require_service("PostgreSQL", PG_URL, 5432)
        name = f"fleettop_{secrets.token_hex(6)}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return PG_URL.rsplit("/", 1)[0] + "/" + name

    yield create
    for name in created:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_database_url(pg_databases) -> str:
    """A fresh, empty PostgreSQL database for this test."""
    return pg_databases()


@pytest.fixture
def redis_url() -> str:
    return require_service("Redis", REDIS_URL, 6379)


@pytest.fixture
def make_settings(tmp_path: Path):
    """Settings with a private data_dir; keyword arguments override sections."""

    def make(**overrides) -> config.Settings:
        data = {"data_dir": str(tmp_path / "data")}
        data.update(overrides)
        return config.Settings.model_validate(data)

    return make
