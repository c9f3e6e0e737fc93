"""A shared Redis fenced with an ACL user, as the README shows: fleettop works with only
its own keys and channels, and that user reaches nothing else. The user is made on the
real Redis for this test alone, and deleted afterwards."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from queue_helpers import Fleettop, run_fleettop, wait_until
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError


def acl_rules(prefix: str) -> list[str]:
    """The README's rules for redis.prefix `prefix`: fleettop's keys, SAQ's keys for its two
    queues (their records and abort flags too), fleettop's channels and SAQ's job channels."""
    return [
        "on",
        "resetkeys",
        "resetchannels",
        f"~{prefix}*",
        f"~saq:{prefix}*",
        f"~saq:job:{prefix}*",
        f"~saq:abort:{prefix}*",
        f"&{prefix}*",
        f"&saq:job:{prefix}*",
        "+@all",
        "-@dangerous",
    ]


@pytest.fixture
async def fenced_user(redis_url: str, prefix: str):
    admin = Redis.from_url(redis_url)
    name, password = f"fleettop-acltest-{uuid.uuid4().hex[:8]}", secrets.token_hex(16)
    await admin.execute_command("ACL", "SETUSER", name, *acl_rules(prefix), f">{password}")
    try:
        parts = urlsplit(redis_url)
        yield admin, urlunsplit(parts._replace(netloc=f"{name}:{password}@{parts.hostname}:{parts.port or 6379}"))
    finally:
        await admin.execute_command("ACL", "DELUSER", name)
        await admin.aclose()


async def test_fleettop_runs_as_a_redis_user_fenced_to_its_prefix(
    make_config, short_dir: Path, fleet, prefix, fenced_user
):
    admin, url = fenced_user
    make_config(servers=["sim-0001", "sim-0002"], worker={"retries": 1}, redis={"url": url, "prefix": prefix})
    config = short_dir / "config.yaml"
    config.chmod(0o600)  # it holds the user's password
    headless = await Fleettop.start(config, "--headless", name="headless")
    try:
        await wait_until(lambda: admin.zcount(prefix + "workers", "-inf", "+inf"), 30)
        for command in (
            ("collect", "--all", "--wait"),
            ("queue", "pause"),
            ("queue", "resume"),
            ("queue", "stats"),
            ("collect", "sim-0001", "--wait"),
            ("cache", "clear"),
        ):
            code, out, err = await run_fleettop(config, *command)
            assert code == 0, (command, out, err)
            assert "NOPERM" not in out + err and "permission" not in (out + err).lower(), (command, err)
    finally:
        assert await headless.stop() == 0, headless.text()[-3000:]
    assert "NOPERM" not in headless.text() and "no permissions" not in headless.text(), headless.text()[-3000:]

    fenced = Redis.from_url(url)
    try:
        await fenced.set(prefix + "mine", 1)
        for forbidden in (
            fenced.get("another-fleet:x"),
            fenced.set("saq:job:another-fleet:manual:1", 1),
            fenced.publish("another-fleet:events", "x"),
            fenced.flushdb(),
            fenced.keys("*"),
        ):
            with pytest.raises(NoPermissionError):
                await forbidden
    finally:
        await fenced.aclose()
