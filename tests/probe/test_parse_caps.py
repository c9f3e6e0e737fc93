"""What one probe answer can cost (security review finding 8): however many disks a host
lists and however long their names, a sample keeps at most MAX_DISKS, names of at most
NAME_MAX characters, and so a bounded size in SQL and in Redis."""

from __future__ import annotations

from pathlib import Path

from fleettop.probe.parse import END_MARKER, MAX_DISKS, NAME_MAX, compute, parse
from fleettop.probe.ssh import MAX_OUTPUT_BYTES

DATA = Path(__file__).parent / "data"
SAMPLE_MAX_BYTES = 256 * 1024  # the worst case (MAX_DISKS at NAME_MAX) measured 155 KiB


def _with_disks(lines: list[tuple[str, str, str]], used) -> str:
    """The real local answer with these (device, mount, fstype) disks added to @mounts and @df."""
    text = (DATA / "local-next.txt").read_text()
    mounts = "".join(f"{device} {mount} {fstype} rw 0 0\n" for device, mount, fstype in lines)
    rows = "".join(
        f"{device} 1000 {used(i)} {1000 - used(i)} 1% {mount}\n" for i, (device, mount, _) in enumerate(lines)
    )
    return text.replace("@df\n", mounts + "@df\n").replace(END_MARKER, rows + END_MARKER)


def test_the_reviews_two_mib_answer_keeps_the_fullest_disks_only():
    """The review's amplify.py: 2 MiB of unique disks parsed to 14,009 disks and a 2 MiB sample."""
    count = 2 * 1024 * 1024 // 60
    text = _with_disks([(f"/dev/x{i}", f"/m{i}", "ext4") for i in range(count)], used=lambda i: i % 1000)
    assert len(text) >= 2 * 1024 * 1024 > MAX_OUTPUT_BYTES  # refused by the SSH reader before it gets here
    metrics = compute(parse(text), None).metrics
    assert len(metrics.disks) == MAX_DISKS
    assert min(disk.used_bytes for disk in metrics.disks) >= (1000 - MAX_DISKS) * 1024  # the fullest kept
    assert metrics.disk_percent == max(disk.percent for disk in metrics.disks)
    assert [disk.mount for disk in metrics.disks] == sorted(disk.mount for disk in metrics.disks)


def test_the_largest_sample_a_host_can_make_is_bounded():
    long = [(f"/dev/{i:04d}{'d' * 400}", f"/{i:04d}{'m' * 400}", "x" * 64) for i in range(1000)]
    metrics = compute(parse(_with_disks(long, used=lambda i: 500)), None).metrics
    assert len(metrics.disks) == MAX_DISKS
    assert {len(disk.mount) for disk in metrics.disks} == {len(disk.device) for disk in metrics.disks} == {NAME_MAX}
    assert len(metrics.model_dump_json()) < SAMPLE_MAX_BYTES
