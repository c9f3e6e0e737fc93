"""What a collect job is, for everyone who queues, runs or waits for one.

Light to import (no SQLAlchemy, no SSH, no SAQ at run time): the job's options, its
results, its run key and the context a worker gives it. fleettop.queue.control queues and
waits with these, fleettop.queue.jobs runs the job, and a command attached to a running
worker (fleettop.cli.attached) needs nothing heavier.
"""

from __future__ import annotations

import math
import typing as t
from dataclasses import dataclass

from fleettop.config import Settings
from fleettop.timing import scaled

if t.TYPE_CHECKING:
    from saq.job import Job

    from fleettop.cache import Cache
    from fleettop.probe import Prober
    from fleettop.queue.worker import Lanes
    from fleettop.store.repo import Repository

# The collect job's results: a fresh collection stored, its server removed between queuing
# and running, or disabled meanwhile.
OK = {"status": "ok"}
GONE = {"status": "gone"}
DISABLED = {"status": "disabled"}

HEARTBEAT_LIMIT_S = scaled(10)  # a job not touched for this long is swept (and re-run)
JOB_MARGIN_S = 15  # SQL and Redis writes around the SSH exchange


class AttemptFailed(Exception):
    """One attempt failed; SAQ retries the job or marks it failed."""


@dataclass
class CollectContext:
    """What a collect job needs, shared by every job a worker runs."""

    settings: Settings
    repo: Repository
    cache: Cache
    prober: Prober
    lanes: Lanes


def job_timeout(settings: Settings) -> int:
    """Long enough for one SSH connect and one probe command, plus the writes around them."""
    return math.ceil(settings.ssh.connect_timeout + settings.ssh.command_timeout + JOB_MARGIN_S)


def job_options(settings: Settings) -> dict[str, t.Any]:
    return {
        "timeout": job_timeout(settings),
        "heartbeat": HEARTBEAT_LIMIT_S,
        "retries": settings.worker.retries,
        "retry_delay": scaled(settings.worker.retry_backoff),
        # Finished job records stay for `collect --wait`; `queue clean` trims them sooner.
        "ttl": max(settings.queue.completed_max_age, settings.queue.failed_max_age, 600),
    }


def retry_delay(settings: Settings, failed_attempt: int) -> float:
    return scaled(settings.worker.retry_backoff * 2 ** (failed_attempt - 1))


def run_key(job: Job) -> str:
    return f"{job.key}@{job.scheduled or job.queued}"
