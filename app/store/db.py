"""The database: engine, sessions, and the migrations applied at start."""

from __future__ import annotations

import asyncio
import fcntl
import functools
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from fleettop.config import Settings
from fleettop.errors import FleettopError
from fleettop.private import private_dir, tighten_own_file
from fleettop.text import first_line

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Connection

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger("fleettop.store")
# Alembic narrates a migration at INFO (plugin set-up, dialect notes): one line of our own
# says what happened instead; its warnings still show.
logging.getLogger("alembic").setLevel(logging.WARNING)
SQLITE_BUSY_TIMEOUT_MS = 10_000
PG_CONNECT_TIMEOUT_S = 10
PG_COMMAND_TIMEOUT_S = 300  # far past any query of fleettop's (a big purge included): only against "forever"
# Several fleettop processes may start at once against one Postgres: one migrates, the others wait.
PG_MIGRATION_LOCK = 0x666C656574  # "fleet"


class DatabaseError(FleettopError):
    """The database cannot be opened or migrated."""


@dataclass
class Database:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    url: str  # for messages: the password hidden
    sqlite_path: Path | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def revision(self) -> str | None:
        """The schema revision the database is at (None when it has none yet)."""
        from alembic.runtime.migration import MigrationContext

        try:
            async with self.engine.connect() as conn:
                return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
        except (OSError, DBAPIError) as exc:
            raise DatabaseError(f"cannot open the database {self.url}: {describe_error(exc)}") from None

    async def close(self) -> None:
        await self.engine.dispose()


@asynccontextmanager
async def reporting_errors(database: Database) -> AsyncIterator[None]:
    """Turn a database failure in the body (locked too long, server gone) into one line for the user."""
    try:
        yield
    except (ConnectionError, DBAPIError) as exc:
        raise DatabaseError(f"database {database.url}: {describe_error(exc)}") from None


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


_REVISION_RE = re.compile(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION_RE = re.compile(r"^down_revision\s*=\s*(.+)$", re.MULTILINE)


@functools.cache
def known_head() -> str | None:
    """The head revision read from the migration files' `revision = ...` lines, without
    importing Alembic (~0.1 s at start-up); None when that is not clear-cut (several heads,
    an unusual file), and the caller then asks Alembic."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        found, down = _REVISION_RE.search(source), _DOWN_REVISION_RE.search(source)
        if found is None or down is None:
            if path.name == "__init__.py":
                continue
            return None
        revisions.add(found.group(1))
        parents.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


async def open_database(settings: Settings, *, migrate_to_head: bool = True) -> Database:
    """Open (creating if needed) the configured database and migrate it to the newest schema."""
    url = settings.database_url
    try:
        parsed = make_url(url)
    except ArgumentError:
        # not echoed: where a URL that does not parse holds its password is anyone's guess
        raise DatabaseError(
            "database.url is not a database URL (dialect+driver://user:password@host/database)"
        ) from None
    sqlite_path = None
    if parsed.get_backend_name() == "sqlite":
        private_dir(settings.data_dir)
        if parsed.database and parsed.database != ":memory:":
            sqlite_path = Path(parsed.database).expanduser()
            # Whoever may write its directory may swap the database (servers, secrets): refused.
            private_dir(sqlite_path.parent, tighten=sqlite_path.parent == settings.data_dir)
            # The fleet's inventory and history are the owner's: a new database file (and the
            # -wal and -shm files SQLite creates with its mode) is 0600, whatever the umask;
            # an existing one is tightened to 0600.
            try:
                os.close(os.open(sqlite_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                for path in (sqlite_path, Path(f"{sqlite_path}-wal"), Path(f"{sqlite_path}-shm")):
                    tighten_own_file(path)
        engine = _sqlite_engine(url)
    elif parsed.drivername == "postgresql+asyncpg":
        parsed, connect_args = _asyncpg_tls(parsed)
        # A server that stops answering (frozen, partitioned without resets) must not hold a
        # query or a connect forever: bounded, the caller sees an error and retries.
        connect_args = {"timeout": PG_CONNECT_TIMEOUT_S, "command_timeout": PG_COMMAND_TIMEOUT_S, **connect_args}
        engine = create_async_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    else:
        raise DatabaseError(
            f"database.url: unsupported driver {parsed.drivername!r} (use sqlite+aiosqlite:// or postgresql+asyncpg://)"
        )
    database = Database(
        engine,
        async_sessionmaker(engine, expire_on_commit=False),
        url=parsed.render_as_string(hide_password=True),
        sqlite_path=sqlite_path,
    )
    if migrate_to_head:
        try:
            await migrate(database)
        except BaseException:
            await engine.dispose()
            raise
    return database


SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _asyncpg_tls(parsed: URL) -> tuple[URL, dict]:
    """libpq's TLS options in the URL (sslmode, sslrootcert, sslcert, sslkey), as asyncpg takes
    them: asyncpg knows only `ssl` (a mode or an SSLContext) and fails on the others. The modes
    mean what libpq says; certificate files without a mode mean verify-full."""
    query = dict(parsed.query)
    mode = query.pop("sslmode", None) or query.pop("ssl", None)
    files = {name: query.pop(name, None) for name in ("sslrootcert", "sslcert", "sslkey")}
    if mode is None and not any(files.values()):
        return parsed, {}
    if isinstance(mode, tuple) or (mode is not None and mode not in SSL_MODES):
        raise DatabaseError(f"database.url: sslmode must be one of {', '.join(SSL_MODES)} (got {mode!r})")
    for name, value in files.items():
        if isinstance(value, tuple):
            raise DatabaseError(f"database.url: {name} given more than once")
    parsed = parsed.set(query=query)
    if not any(files.values()):
        return parsed, {"ssl": mode}
    import ssl  # only for a URL that names certificate files

    mode = mode or "verify-full"
    try:
        context = ssl.create_default_context(cafile=files["sslrootcert"])
        if files["sslcert"]:
            context.load_cert_chain(files["sslcert"], files["sslkey"])
    except (OSError, ssl.SSLError) as exc:
        raise DatabaseError(f"database.url: cannot load the TLS files: {exc}") from None
    if mode != "verify-full":
        context.check_hostname = False
    # As libpq: `require` with a root certificate verifies the server's chain (verify-ca); a URL
    # copied from a libpq setup keeps its server authentication.
    if mode in ("allow", "prefer") or (mode == "require" and not files["sslrootcert"]):
        context.verify_mode = ssl.CERT_NONE
    return parsed, {"ssl": context if mode != "disable" else False}


def _sqlite_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL, far fewer fsyncs
        cursor.close()

    return engine


async def migrate(database: Database) -> None:
    """Apply every migration up to head (a no-op when the schema is current)."""
    try:
        # SQLite: even the check waits for the file lock, as no connection may open while
        # another process creates the file (switching it to WAL needs it alone).
        async with _sqlite_migration_lock(database.sqlite_path):
            if await _at_head(database):
                return  # the usual case: no Alembic
            async with database.engine.connect() as conn, _sqlite_foreign_keys_off(conn):
                async with conn.begin():
                    if database.dialect == "postgresql":
                        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
                    await conn.run_sync(_upgrade)
            log.info("database schema upgraded to %s (%s)", known_head(), database.url)
    except (OSError, DBAPIError) as exc:
        raise DatabaseError(f"cannot open the database {database.url}: {describe_error(exc)}") from None


async def _at_head(database: Database) -> bool:
    """Whether alembic_version already names the head, read with plain SQL. False on any
    doubt (no table yet, no clear head, an error): the caller then migrates under its lock."""
    head = known_head()
    if head is None:
        return False
    async with database.engine.connect() as conn:  # a failure to connect is the caller's to report
        try:
            rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
        except DBAPIError:  # no such table: a new database
            return False
    return rows == [head]


@asynccontextmanager
async def _sqlite_foreign_keys_off(conn: AsyncConnection) -> AsyncIterator[None]:
    """SQLite alters a column by rebuilding its table (Alembic's batch mode): with foreign keys
    on, dropping the old `servers` would cascade-delete every sample and run. The pragma is
    ignored inside a transaction, so it is set before the migration's, and set back after."""
    if conn.dialect.name != "sqlite":
        yield
        return
    await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
    await conn.commit()
    try:
        yield
    finally:
        await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        await conn.commit()


@asynccontextmanager
async def _sqlite_migration_lock(path: Path | None) -> AsyncIterator[None]:
    """One migration at a time on a SQLite file, across processes (TUI and headless starting
    together) and within one (Alembic's context is global to the process).
    Postgres gets the same from its advisory lock."""
    if path is None:
        yield
        return
    fd = os.open(f"{path}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _upgrade(connection: Connection) -> None:
    from alembic import command

    config = _alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


# What a database failure raises, for the layers above that may not name SQLAlchemy.
SQL_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError, DatabaseError)


def describe_error(exc: BaseException) -> str:
    """The driver's own first line about a database failure."""
    return first_line(getattr(exc, "orig", None) or exc)
