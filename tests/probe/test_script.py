"""app/probe/script.sh itself, run by /bin/sh against a /proc of the test's making.

In a private mount namespace (unshare -m, root) a tmpfs is mounted over /proc holding
copies of the files the script reads, with a mounts file of the test's choosing; a
`timeout` first on PATH records that it ran, then runs the real one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from probe_helpers import unavailable

from fleettop.probe.parse import parse
from fleettop.probe.script import PROBE_SCRIPT

PROC_FILES = ("uptime", "stat", "loadavg", "meminfo", "net/dev")
LOCAL_ONLY = (
    "/dev/vda1 / ext4 rw,relatime 0 0\ntmpfs /run tmpfs rw 0 0\nsystemd-1 /proc/sys/fs/binfmt_misc autofs rw 0 0\n"
)
WITH_NFS = LOCAL_ONLY + "nas:/export /srv/nas nfs4 rw,relatime,vers=4.2 0 0\n"


@pytest.fixture
def fake_proc(tmp_path: Path) -> Path:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("timeout") is None:
        unavailable("the script tests mount over /proc in a private namespace: they need root, unshare and timeout")
    source = tmp_path / "proc"
    for name in PROC_FILES:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(Path("/proc", name).read_bytes())
    (source / "1").mkdir()  # one process
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "timeout"
    wrapper.write_text(f'#!/bin/sh\n: > "{tmp_path}/timeout-ran"\nexec {shutil.which("timeout")} "$@"\n')
    wrapper.chmod(0o755)
    return tmp_path


def run_script(root: Path, mounts: str) -> str:
    (root / "proc" / "mounts").write_text(mounts)
    # The copies go over /proc only inside the namespace; `mount --bind` of a prepared tree
    # keeps the script's reads (/proc/uptime, /proc/[0-9]*, ...) on the test's files.
    command = f'mount --bind "{root}/proc" /proc && exec /bin/sh -s -- 0'
    completed = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", command],
        input=PROBE_SCRIPT.encode(),
        capture_output=True,
        timeout=30,
        env={**os.environ, "PATH": f"{root}/bin:{os.environ.get('PATH', '/usr/bin:/bin')}"},
    )
    assert completed.returncode == 0, completed.stderr.decode()
    return completed.stdout.decode()


def test_df_runs_under_timeout_only_when_a_mount_may_hang(fake_proc: Path):
    local = run_script(fake_proc, LOCAL_ONLY)
    assert not (fake_proc / "timeout-ran").exists()  # ext4, tmpfs, autofs: df alone
    remote = run_script(fake_proc, WITH_NFS)
    assert (fake_proc / "timeout-ran").exists()  # an NFS mount: df under timeout 5
    for output in (local, remote):
        sample = parse(output)
        assert sample.mem_total_bytes > 0 and sample.procs == 1


def test_mount_lines_pass_through_unchanged(fake_proc: Path):
    output = run_script(fake_proc, WITH_NFS)
    listed = output.split("@mounts\n", 1)[1].split("@df\n", 1)[0]
    assert listed == WITH_NFS
