"""URLs with a password in them (security review finding 9): a URL that does not parse is
never echoed, and redaction hides everything between :// and the last @, whatever
characters the password holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from queue_helpers import run_fleettop

from fleettop.config import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pa:ss@h/db", "postgresql://***@h/db"),
        ("redis://:Pa/Ss@127.0.0.1:6379/11", "redis://***@127.0.0.1:6379/11"),
        ("postgresql+asyncpg://u:p@ss@db:5432/x", "postgresql+asyncpg://***@db:5432/x"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("postgres:Hunter2pw@db:5432/x", "postgres:***@db:5432/x"),
    ],
)
def test_redaction_drops_every_credential(url: str, shown: str):
    assert redact_url(f"cannot reach {url}: refused") == f"cannot reach {shown}: refused"


@pytest.mark.parametrize(
    ("section", "url", "command", "exit_code"),
    [
        ("database", "postgresql+asyncpg//u:Pa/Ss@127.0.0.1:5999/x", ("servers", "list"), 1),  # a DatabaseError
        ("redis", "redis://:Pa/Ss@127.0.0.1:6379/11", ("queue", "pause"), 2),
        ("redis", "redis://:Pa/Ss@127.0.0.1:6379/11", ("collect", "--all"), 2),
    ],
)
async def test_a_url_that_does_not_parse_is_a_one_line_error_without_its_password(
    short_dir: Path, section, url, command, exit_code
):
    config = short_dir / "config.yaml"
    config.write_text(f"data_dir: {short_dir / 'data'}\n{section}:\n  url: '{url}'\n")
    config.chmod(0o600)
    code, out, err = await run_fleettop(config, *command)
    assert code == exit_code, (code, out, err)
    assert "Pa" not in err and "Ss" not in err, err
    assert len(err.splitlines()) == 1 and err.startswith(f"fleettop: {section}.url"), err
