"""CLI start-up: what a command with nothing to migrate and no host to reach leaves unimported."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from fleettop.store.db import head_revision, known_head


def test_known_head_is_alembics_head():
    assert known_head() is not None
    assert known_head() == head_revision()


def test_cli_path_at_head_imports_neither_alembic_nor_asyncssh(tmp_path):
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from fleettop.config import Settings
        from fleettop.store.db import open_database

        async def main():
            for _ in range(2):  # the first creates the schema (Alembic), the second finds it at head
                database = await open_database(Settings(data_dir={str(tmp_path)!r}))
                await database.close()

        asyncio.run(main())
        before = {{name for name in sys.modules if name.split(".")[0] == "alembic"}}
        assert before, "the first open migrated with Alembic"
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    at_head = textwrap.dedent(
        f"""
        import asyncio, sys
        from fleettop.config import Settings
        from fleettop.store.db import open_database
        import fleettop.cli.collect, fleettop.cli.servers  # the CLI's handlers

        async def main():
            database = await open_database(Settings(data_dir={str(tmp_path)!r}))
            await database.close()

        asyncio.run(main())
        loaded = sorted({{name.split(".")[0] for name in sys.modules}} & {{"alembic", "asyncssh", "textual"}})
        loaded += sorted(name for name in sys.modules if name.startswith("cryptography.hazmat"))
        assert not loaded, loaded
        """
    )
    subprocess.run([sys.executable, "-c", at_head], check=True)


def test_the_attached_cli_path_imports_no_database_ssh_or_ui():
    """What `collect` and `queue stats` import before they know whether a worker is attached."""
    script = textwrap.dedent(
        """
        import sys
        import fleettop.cli, fleettop.cli.collect, fleettop.cli.attached
        heavy = sorted({name.split(".")[0] for name in sys.modules} & {"sqlalchemy", "alembic", "asyncssh", "textual", "aiosqlite", "asyncpg"})
        heavy += sorted(name for name in sys.modules if name.startswith("cryptography.hazmat"))
        assert not heavy, heavy
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_the_http_api_is_imported_only_when_served():
    """FastAPI, Starlette and uvicorn (~0.25 s of imports) load only with api.listen or --listen."""
    script = textwrap.dedent(
        """
        import sys
        import fleettop.cli, fleettop.cli.headless, fleettop.cli.collect, fleettop.wiring, fleettop.service
        loaded = sorted({name.split(".")[0] for name in sys.modules} & {"fastapi", "starlette", "uvicorn", "prometheus_client"})
        assert not loaded, loaded
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)
