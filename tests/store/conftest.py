"""A migrated database per test, on SQLite (a tmp file) and on PostgreSQL (a fresh database),
each a copy of one the session migrated."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import yaml

from fleettop.cli import main
from fleettop.config import Settings
from fleettop.store.db import Database, open_database
from fleettop.store.repo import Repository

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """A SQLite database this session migrated once, for the tests to start from a copy of (as
    the PostgreSQL tests start from a copy of a migrated template: tests/conftest.py)."""
    settings = Settings.model_validate({"data_dir": str(tmp_path_factory.mktemp("migrated") / "data")})

    async def migrate() -> None:
        await (await open_database(settings)).close()  # the last connection closed: no -wal left

    asyncio.run(migrate())
    return settings.data_dir / "fleettop.db"


@pytest.fixture(params=BACKENDS)
def settings(request, make_settings, migrated_sqlite: Path) -> Settings:
    """This test's database, migrated to head, or with no tables in a test marked `empty_database`."""
    if request.param == "postgres":
        return make_settings(database={"url": request.getfixturevalue("pg_database_url")})
    settings = make_settings()
    if request.node.get_closest_marker("empty_database") is None:
        settings.data_dir.mkdir(mode=0o700, parents=True)
        database = settings.data_dir / "fleettop.db"
        shutil.copyfile(migrated_sqlite, database)
        database.chmod(0o600)
    return settings


@pytest.fixture
async def database(settings: Settings):
    db = await open_database(settings)
    yield db
    await db.close()


@pytest.fixture
def repo(database: Database) -> Repository:
    return Repository(database)


@pytest.fixture
def config_path(tmp_path, settings):
    """A config file whose data_dir is private and whose database is this test's."""
    data = {"data_dir": str(settings.data_dir)}
    if settings.database.url:
        data["database"] = {"url": settings.database.url}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def fleettop(config_path, capsys):
    """Run `fleettop --config <tmp> ARGS...`; returns (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["--config", str(config_path), *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
