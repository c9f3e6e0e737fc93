"""The fault suite: real processes stopped, killed and restarted; hostile hosts and users.

It uses the queue's world of tests/conftest.py (a Redis key prefix of its own, a short
data_dir, a SimFleet, a config file) and tests/queue_helpers.py, and adds
private servers it may stop at will: a redis-server on a port of its own, and a
PostgreSQL instance of its own (initdb + pg_ctl, run as the `postgres` user when
the tests run as root). The shared Redis and PostgreSQL are never stopped.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_helpers import PG_BIN, PrivatePostgres, PrivateRedis, unavailable


@pytest.fixture
def private_redis(short_dir: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(short_dir)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if not PG_BIN or not (PG_BIN[-1] / "initdb").exists():
        unavailable("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            unavailable("running as root and no `postgres` user to run a private PostgreSQL")
        user = "postgres"
    directory = Path(tempfile.mkdtemp(prefix="ftpg-"))
    if user:
        shutil.chown(directory, user)
    server = PrivatePostgres(directory, user)
    server.init()
    server.start()
    yield server
    with contextlib.suppress(Exception):
        server.stop()
    shutil.rmtree(directory, ignore_errors=True)
