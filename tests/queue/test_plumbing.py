"""Small pieces with no service behind them: Redis targets, log lines, key names."""

from __future__ import annotations

import logging
from pathlib import Path

from fleettop.cache import Cache
from fleettop.config import Settings
from fleettop.logs import AttemptFailedFilter, LogfmtFormatter
from fleettop.queue.contract import AttemptFailed
from fleettop.redis_server import RedisTarget, redis_server_binary


def test_a_redis_url_is_described_without_its_password():
    assert RedisTarget(url="rediss://:s3cret@cache.example:6380/2").describe() == "redis at cache.example:6380"
    assert "s3cret" not in RedisTarget(url="redis://user:s3cret@10.0.0.5/0").describe()
    assert RedisTarget(unix_socket=Path("/d/redis.sock")).describe() == "embedded redis at /d/redis.sock"


def test_a_redis_server_binary_is_found():
    assert Path(redis_server_binary()).name == "redis-server"


def _record(message: str, exc: BaseException | None = None) -> logging.LogRecord:
    return logging.LogRecord(
        "fleettop.jobs", logging.ERROR, __file__, 1, message, None, (type(exc), exc, None) if exc else None
    )


def test_log_lines_are_logfmt_and_one_line_each():
    try:
        raise ConnectionError("refused\nsecond line")
    except ConnectionError as exc:
        line = LogfmtFormatter().format(_record('lost "redis"', exc))
    assert "\n" not in line
    assert 'level=error logger=fleettop.jobs msg="lost \\"redis\\"" error="ConnectionError: refused"' in line
    assert LogfmtFormatter().format(_record("plain")).endswith("msg=plain")


def test_a_failed_attempt_is_logged_once_not_twice():
    assert not AttemptFailedFilter().filter(_record("Error processing job", AttemptFailed("web1: refused")))
    assert AttemptFailedFilter().filter(_record("Upkeep task failed", ConnectionError("gone")))


def test_every_key_carries_the_prefix():
    cache = Cache(None, Settings(redis={"prefix": "p1:"}))  # type: ignore[arg-type]
    assert cache.queue_name("manual") == "p1:manual"
    assert cache.job_key("scheduled", 7) == "p1:scheduled:7"
    assert cache.server_of_job_key("scheduled", "p1:scheduled:7") == 7
    assert cache.server_of_job_key("scheduled", "p2:scheduled:7") is None
    assert cache.paused_key.startswith("p1:") and cache.events_channel.startswith("p1:")
