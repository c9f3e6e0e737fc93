"""A UserKnownHostsFile of the ssh config vouches only for the hosts its Host block matches, as
in OpenSSH: a lab's file trusting every name (`*`) must not make a production server, collected
after the lab, accept the lab's key."""

from __future__ import annotations

from pathlib import Path

import asyncssh

from fleettop.config import SSHConfig
from fleettop.probe.ssh import SSHPool, SSHTarget


async def test_a_host_blocks_known_hosts_file_trusts_nobody_else(tmp_path: Path):
    tmp_path.chmod(0o700)
    key = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    algorithm, blob = key.export_public_key().decode().split()[:2]
    lab_known_hosts = tmp_path / "lab_known_hosts"
    lab_known_hosts.write_text(f"* {algorithm} {blob}\n")
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(f"Host lab1\n  HostName 10.9.9.9\n  UserKnownHostsFile {lab_known_hosts}\n")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    for path in (lab_known_hosts, ssh_config, known_hosts):
        path.chmod(0o600)
    pool = SSHPool(SSHConfig(config=ssh_config, known_hosts=known_hosts), tmp_path / "data")
    prod = SSHTarget("prod", "10.1.1.1", 22, "root", "agent")
    lab = SSHTarget("lab", "lab1", 22, "root", "agent")

    assert await pool.trusted_state(prod, key) == "unknown"
    assert await pool.trusted_state(lab, key) == "trusted"  # its own block's file
    assert await pool.trusted_state(prod, key) == "unknown"  # still, after the lab was resolved
    await pool.close()
