"""Fixtures shared by every test area: settings in a private data_dir, the real
services (Redis, PostgreSQL) the integration tests talk to, and the queue's world (a
Redis key prefix of a test's own, a short data_dir, a SimFleet, a config file) that the
queue and fault tests share. The helpers they share are modules beside this one
(queue_helpers.py, store_helpers.py): `pythonpath` in pyproject.toml puts tests/ on sys.path.

Where a service is missing, a test that needs it is skipped on a developer's
machine and fails in CI (CI=true): a green CI run never hides a missing service.
"""

from __future__ import annotations

import asyncio
import gc
import os
import secrets
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import redis
import yaml

# The protocol's waits (intervals, retry backoffs, job heartbeats, sweeps, the reconcile) at a
# fifth of their seconds: fleettop.timing reads this once, when fleettop is first imported (so
# before any import of it below), and every fleettop subprocess inherits it. Tests compare with
# timing.scaled(...); FLEETTOP_TEST_TIME_SCALE=1 runs the suite on the real clock.
os.environ.setdefault("FLEETTOP_TEST_TIME_SCALE", "0.2")

# A test process holds the whole suite's modules and fixtures, and Python's default threshold
# (a young collection every 700 allocations) had it walk them ~3,000 times per process: ~2.5 s
# of CPU each, 6 processes. A collection every 10,000 (the older generations' ratios kept)
# cut the tui and store tests' garbage collection from 17.6 s to 5.5 s of CPU, at the same peak
# memory (measured with gc.callbacks). When garbage is collected changes, not what is collected.
gc.set_threshold(10_000, 10, 10)

from fleettop import config  # noqa: E402
from fleettop.probe.sim import SimFleet  # noqa: E402

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


def pytest_collection_finish(session: pytest.Session) -> None:
    # What collection imported (fleettop, its libraries, the tests) lives as long as the
    # process: out of the collector's sight, no collection walks it again, among them the five
    # full ones pytest runs as a test process ends (0.65 s of CPU each time, measured).
    gc.freeze()


def pytest_sessionstart(session: pytest.Session) -> None:
    from xdist import is_xdist_controller

    if is_xdist_controller(session):
        if session.config.getoption("assertmode") == "rewrite":
            _rewrite_test_modules_once(session.config)
        gc.freeze()  # as pytest_collection_finish does in the test processes


def _rewrite_test_modules_once(config: pytest.Config) -> None:
    """Every xdist worker imports every test module, and pytest rewrites the asserts of each
    (~600 KB of tests: 2.6 s of CPU per worker) unless it finds the result in __pycache__,
    which a fresh clone never has and which pytest does not write where
    PYTHONDONTWRITEBYTECODE is set (as on CI's machines). The controller, which imports no
    test, writes that cache once before the workers start (this hook runs before xdist's);
    they read it, pytest checking each file's mtime and size as always. Uses pytest's own
    rewriting functions, which are not public: on a pytest without them, nothing is cached."""
    try:
        from _pytest.assertion.rewrite import (
            PYC_TAIL,
            _read_pyc,
            _rewrite_test,
            _write_pyc,
            assertstate_key,
            get_cache_dir,
        )
    except ImportError:
        return
    ignored = [Path(path).resolve() for path in config.getoption("ignore") or []]
    modules: set[Path] = set()
    for argument in config.args:
        path = Path(argument.split("::")[0]).resolve()
        found = [path] if path.is_file() else [*path.rglob("test_*.py"), *path.rglob("conftest.py")]
        modules.update(module for module in found if not any(module.is_relative_to(skip) for skip in ignored))
    state = config.stash[assertstate_key]
    for module in sorted(modules):
        pyc = get_cache_dir(module) / (module.name[:-3] + PYC_TAIL)
        if _read_pyc(module, pyc) is None:
            pyc.parent.mkdir(exist_ok=True)
            source_stat, code = _rewrite_test(module, config)
            _write_pyc(state, code, source_stat, pyc)


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


async def _migrate(url: str) -> None:
    from fleettop.store.db import open_database

    database = await open_database(config.Settings.model_validate({"database": {"url": url}}))
    await database.close()


class PgDatabases:
    """Throwaway PostgreSQL databases (fleettop_<random>), so that parallel test runs never
    share tables. A test's database is dropped once it is done, on a thread of its own while
    the next tests run (a DROP DATABASE takes ~0.3 s: 126 of them in a row held up the end
    of the session by 30 s); whatever is left is dropped at the end of the session.

    A database comes migrated to head, as a copy of a template this session migrates once
    (CREATE DATABASE ... TEMPLATE): a migration per test cost ~0.1 s of CPU, most of the
    PostgreSQL tests being about something else. A test about the migrations themselves is
    marked `empty_database` and gets a database with no tables."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self._template: str | None = None
        self._dropping = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-drop")
        self._drops: list[Future[None]] = []

    def __call__(self, *, migrated: bool = True) -> str:
        require_service("PostgreSQL", PG_URL, 5432)
        template = self._migrated_template() if migrated else None
        name = self._create(template)
        self.created.append(name)
        return self._url(name)

    @staticmethod
    def _url(name: str) -> str:
        return PG_URL.rsplit("/", 1)[0] + "/" + name

    @staticmethod
    def _create(template: str | None) -> str:
        name = f"fleettop_{secrets.token_hex(6)}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
        return name

    def _migrated_template(self) -> str:
        if self._template is None:
            name = self._create(None)
            self.created.append(name)
            asyncio.run(_migrate(self._url(name)))  # its connections closed: a template must have none
            self._template = name
        return self._template

    @staticmethod
    def _drop(name: str) -> None:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def drop_soon(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self.created.remove(name)
        self._drops.append(self._dropping.submit(self._drop, name))

    def close(self) -> None:
        self._dropping.shutdown(wait=True)
        for name in self.created:
            self._drop(name)
        for drop in self._drops:
            drop.result()  # a drop that failed says so


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    """A factory of throwaway PostgreSQL databases, all dropped by the end of the session."""
    databases = PgDatabases()
    yield databases
    databases.close()


@pytest.fixture
def pg_database_url(request, pg_databases: PgDatabases) -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped after it: migrated to head, or
    with no tables at all for a test marked `empty_database`."""
    url = pg_databases(migrated=request.node.get_closest_marker("empty_database") is None)
    yield url
    pg_databases.drop_soon(url)


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


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


# -- the queue's world (queue and fault tests; Redis, SQL and SSH all real) --------------


@pytest.fixture
def prefix(redis_url: str):
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    value = f"fttest-{uuid.uuid4().hex[:12]}:"
    yield value
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"*{value}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def short_dir():
    """A data_dir short enough for a unix socket path (pytest's tmp_path may not be)."""
    path = Path(tempfile.mkdtemp(prefix="ftq-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def database_url(request, short_dir: Path) -> str | None:
    """None (SQLite in data_dir) or a fresh PostgreSQL database."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_database_url")
    return None


@pytest.fixture
async def fleet() -> AsyncIterator[SimFleet]:
    async with SimFleet(4, seed=3, reboots=False) as fleet:
        yield fleet


@pytest.fixture
def make_config(short_dir: Path, redis_url: str, prefix: str, fleet: SimFleet):
    """A config dict for these tests (the fleet as config servers); keyword
    arguments replace sections or keys. Also written to short_dir/config.yaml."""

    def make(*, servers: list[str] | None = None, interval: int = 900, **overrides: Any) -> dict[str, Any]:
        chosen = [cfg for cfg in fleet.server_configs() if servers is None or cfg.name in servers]
        data: dict[str, Any] = {
            "data_dir": str(short_dir / "data"),
            "redis": {"url": redis_url, "prefix": prefix},
            "worker": {"concurrency": 5, "retries": 3, "retry_backoff": 5, "shutdown_grace": 2},
            "ssh": {
                "known_hosts": str(fleet.known_hosts_path),
                "connect_timeout": 3,
                "command_timeout": 5,
            },
            "servers": [
                {**cfg.model_dump(mode="json", exclude_none=True, exclude={"thresholds"}), "interval": interval}
                for cfg in chosen
            ],
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        (short_dir / "config.yaml").write_text(yaml.safe_dump(data))
        return data

    return make
