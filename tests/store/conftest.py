"""A migrated database per test, on SQLite (a tmp file) and on PostgreSQL (a fresh database)."""

from __future__ import annotations

import pytest
import yaml

from fleettop.cli import main
from fleettop.config import Settings
from fleettop.store.db import Database, open_database
from fleettop.store.repo import Repository

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def settings(request, make_settings) -> Settings:
    if request.param == "postgres":
        return make_settings(database={"url": request.getfixturevalue("pg_database_url")})
    return make_settings()


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
