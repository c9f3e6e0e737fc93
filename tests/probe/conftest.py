"""Simulated hosts, and a real OpenSSH sshd on a loopback port, for the probe's integration tests."""

from __future__ import annotations

import pytest
from probe_helpers import running_sshd

from fleettop.probe import Prober
from fleettop.probe.sim import SimFleet


@pytest.fixture
async def fleet():
    async with SimFleet(3, seed=7) as fleet:
        yield fleet


@pytest.fixture
def fleet_settings(fleet, make_settings):
    """Settings trusting the fleet's host keys and using its client key."""

    def make(**ssh):
        values = {
            "known_hosts": str(fleet.known_hosts_path),
            "key_file": str(fleet.client_key_path),
            "username": fleet.username,
            "command_timeout": 5,
            "connect_timeout": 5,
        }
        values.update(ssh)
        return make_settings(ssh=values)

    return make


@pytest.fixture
async def prober(fleet_settings):
    prober = Prober(fleet_settings())
    yield prober
    await prober.close()


# -- a real sshd -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def real_sshd():
    """OpenSSH's sshd on 127.0.0.1 (a free high port), with its own host key, config and pid file."""
    with running_sshd(1) as sshd:
        yield sshd
