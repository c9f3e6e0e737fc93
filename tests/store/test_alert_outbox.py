"""The alert outbox in SQL (SQLite and PostgreSQL): claimed by one worker at a time, claimed
again when its worker died (the lease ran out), never again once delivered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from store_helpers import add_server, metrics

from fleettop.alerting import AlertPolicy
from fleettop.store.alerts import AlertSetup
from fleettop.store.db import Database
from fleettop.store.repo import Repository

LEASE = timedelta(seconds=1)
URLS = ["url-digest"]  # the claiming worker's notify.urls, by fingerprint


async def firing_repo(database: Database, hosts: int) -> Repository:
    """A repository whose `hosts` servers each have a firing cpu alert owed to one URL."""
    repo = Repository(database, alert_setup=AlertSetup(AlertPolicy(for_samples=1), targets=("url-digest",)))
    for index in range(hosts):
        server_id = await add_server(repo, f"web{index}")
        server = await repo.get_server_by_id(server_id)
        inputs = await repo.begin_collection(server_id, f"k{index}", trigger="manual", attempt=1, skip_disabled=True)
        assert server is not None and inputs is not None and inputs.run is not None
        sample = metrics(datetime.now(UTC), cpu=99.0)
        await repo.finish_collection(inputs.run, server_id, sample, None, server, inputs.open_alerts)
    return repo


async def test_concurrent_claims_share_the_rows_out_without_overlap(database: Database) -> None:
    repo = await firing_repo(database, 6)
    claims = await asyncio.gather(*(repo.claim_notifications(timedelta(0), LEASE, URLS) for _ in range(4)))
    ids = [i for deliveries in claims for delivery in deliveries for i in delivery.ids]
    assert len(ids) == 6 and len(set(ids)) == 6


async def test_a_claim_whose_worker_died_is_claimed_again_after_the_lease_and_once_delivered_never(
    database: Database,
) -> None:
    repo = await firing_repo(database, 1)
    (first,) = await repo.claim_notifications(timedelta(0), LEASE, URLS)
    assert first.attempts == 1 and first.lines[0].startswith("[FIRING] web0 cpu: 99%")
    assert await repo.claim_notifications(timedelta(0), LEASE, URLS) == []  # claimed: no other worker gets it
    await asyncio.sleep(LEASE.total_seconds() + 0.2)  # its worker died without a word
    (again,) = await repo.claim_notifications(timedelta(0), LEASE, URLS)
    assert again.ids == first.ids and again.attempts == 2
    await repo.delivered(again.ids)
    await asyncio.sleep(LEASE.total_seconds() + 0.2)
    assert await repo.claim_notifications(timedelta(0), LEASE, URLS) == []


async def test_group_wait_holds_a_round_back_until_its_oldest_has_waited(database: Database) -> None:
    repo = await firing_repo(database, 2)
    assert await repo.claim_notifications(timedelta(seconds=30), LEASE, URLS) == []
    (both,) = await repo.claim_notifications(timedelta(0), LEASE, URLS)  # one URL: one message for the round
    assert len(both.lines) == 2


async def test_a_worker_claims_only_the_rows_of_its_own_urls(database: Database) -> None:
    """A dashboard on a laptop with another notify URL must leave the headless worker's rows
    alone: before, it claimed them and marked them failed for good ("URL no longer in notify.urls")."""
    repo = await firing_repo(database, 1)
    assert await repo.claim_notifications(timedelta(0), LEASE, ["another-url"]) == []
    (mine,) = await repo.claim_notifications(timedelta(0), LEASE, URLS)
    assert mine.attempts == 1 and mine.lines[0].startswith("[FIRING] web0 cpu")
