"""A migrated database per test, on SQLite (a tmp file) and on PostgreSQL (a fresh database)."""

from __future__ import annotations

import pytest

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
