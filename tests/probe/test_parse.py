"""The parser on real probe output (this machine's, captured through the local transport)
and on hand-made variants; arbitrary text gives a result or ParseError, nothing else."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleettop.domain import Counters
from fleettop.probe.parse import BEGIN_MARKER, END_MARKER, ParseError, compute, parse

DATA = Path(__file__).parent / "data"
AT = datetime(2026, 1, 1, tzinfo=timezone.utc)
GIB = 1024**3


def fixture(name: str) -> str:
    return (DATA / name).read_text()


def replace_section(text: str, name: str, lines: list[str]) -> str:
    """The text with section @name's body replaced."""
    pattern = re.compile(rf"(^@{re.escape(name)}\n)(?:(?!@).*\n)*", re.MULTILINE)
    assert pattern.search(text), name
    return pattern.sub(lambda match: match.group(1) + "".join(line + "\n" for line in lines), text, count=1)


# -- real output of this machine ---------------------------------------------------


@pytest.mark.parametrize("name", ["local-first.txt", "local-next.txt"])
def test_real_output_parses_to_plausible_figures(name):
    raw = parse(fixture(name))
    assert (raw.first_counters is not None) == (name == "local-first.txt")
    result = compute(raw, None, collected_at=AT)
    metrics = result.metrics
    assert metrics.collected_at == AT
    assert metrics.mem_total_bytes > 0 and 0 <= metrics.mem_percent <= 100
    assert metrics.procs > 0 and metrics.uptime_s > 0
    assert "/" in {disk.mount for disk in metrics.disks}
    assert all(disk.fstype not in {"tmpfs", "devtmpfs", "cgroup", "proc"} for disk in metrics.disks)
    assert metrics.disk_percent == max(disk.percent for disk in metrics.disks)
    if raw.first_counters is not None:  # first contact: rates from the in-script second sample
        assert 0 <= metrics.cpu_percent <= 100
        assert metrics.net_rx_bps >= 0 and metrics.net_tx_bps >= 0
    else:
        assert metrics.cpu_percent is None and metrics.net_rx_bps is None
    assert result.counters.uptime_s == metrics.uptime_s


def test_real_output_delta_against_previous_counters():
    first = compute(parse(fixture("local-first.txt")), None, collected_at=AT)
    later = compute(parse(fixture("local-next.txt")), first.counters, collected_at=AT).metrics
    assert 0 <= later.cpu_percent <= 100
    assert later.net_rx_bps >= 0


# -- a busy host with many mounts, behind a noisy motd ------------------------------


def test_many_mounts_bind_mounts_long_devices_ipv6_nfs_and_noise():
    metrics = compute(parse(fixture("many-mounts.txt")), None, collected_at=AT).metrics
    disks = {disk.mount: disk for disk in metrics.disks}
    # Pseudo filesystems (devtmpfs, tmpfs, squashfs snaps, overlay) are left out; the
    # LVM root bind-mounted at /var/lib/docker/volumes counts once, under "/".
    assert sorted(disks) == ["/", "/boot", "/boot/efi", "/data", "/home", "/srv/backup disk"]
    root = disks["/"]
    assert root.device == "/dev/mapper/ubuntu--vg-ubuntu--lv" and root.fstype == "ext4"
    assert root.total_bytes == 102626232 * 1024 and root.used_bytes == 91000000 * 1024
    assert root.percent == pytest.approx(100 * 91000000 / (91000000 + 6378000))  # as df: used / (used + avail)
    assert metrics.disk_percent == root.percent
    # A device name too long for its column, on a line of its own.
    assert disks["/data"].device.startswith("/dev/mapper/very--long") and disks["/data"].fstype == "ext4"
    assert disks["/data"].used_bytes == 10258118 * 1024
    assert disks["/home"].device == "[2001:db8::15]:/export/home" and disks["/home"].fstype == "nfs4"
    assert disks["/srv/backup disk"].fstype == "xfs"  # /proc/mounts writes the space as \040
    assert metrics.mem_used_bytes == (32869068 - 12000000) * 1024
    assert metrics.swap_used_bytes == (4194300 - 3145725) * 1024
    assert metrics.swap_percent == pytest.approx(25.0, abs=0.01)
    assert (metrics.load1, metrics.load5, metrics.load15) == (3.14, 2.71, 1.62)
    assert metrics.procs == 412
    assert metrics.uptime_s == 1209600.55


def test_network_rates_exclude_loopback_and_use_uptime_as_time_base():
    text = fixture("many-mounts.txt")
    previous = Counters(
        uptime_s=1209540.55, cpu_total=0, cpu_idle=0, net_rx_bytes=919773645 - 60_000, net_tx_bytes=126156789 - 6_000
    )
    raw = parse(text)
    assert raw.counters.net_rx_bytes == 918273645 + 1000000 + 500000
    metrics = compute(raw, previous, collected_at=AT).metrics
    assert metrics.net_rx_bps == pytest.approx(1000.0)
    assert metrics.net_tx_bps == pytest.approx(100.0)


def test_cpu_percent_from_jiffies_delta():
    raw = parse(fixture("many-mounts.txt"))
    now = raw.counters
    previous = Counters(
        uptime_s=now.uptime_s - 10,
        cpu_total=now.cpu_total - 1000,
        cpu_idle=now.cpu_idle - 250,
        net_rx_bytes=now.net_rx_bytes,
        net_tx_bytes=now.net_tx_bytes,
    )
    assert compute(raw, previous, collected_at=AT).metrics.cpu_percent == pytest.approx(75.0)


def test_cpu_idle_counts_iowait_and_ignores_guest_time():
    text = replace_section(fixture("many-mounts.txt"), "stat", ["cpu  100 0 100 700 100 0 0 0 999 999"])
    counters = parse(text).counters
    assert (counters.cpu_total, counters.cpu_idle) == (1000, 800)


def test_reboot_means_no_delta_from_previous():
    raw = parse(fixture("many-mounts.txt"))
    before_reboot = Counters(
        uptime_s=raw.counters.uptime_s + 5000, cpu_total=1, cpu_idle=0, net_rx_bytes=0, net_tx_bytes=0
    )
    metrics = compute(raw, before_reboot, collected_at=AT).metrics
    assert metrics.cpu_percent is None and metrics.net_rx_bps is None and metrics.net_tx_bps is None


def test_rebooted_long_ago_counters_lower_than_previous_gives_no_figures():
    raw = parse(fixture("many-mounts.txt"))
    huge = 10**15
    previous = Counters(uptime_s=1.0, cpu_total=huge, cpu_idle=huge // 2, net_rx_bytes=huge, net_tx_bytes=huge)
    metrics = compute(raw, previous, collected_at=AT).metrics
    assert metrics.cpu_percent is None and metrics.net_rx_bps is None


def test_in_script_first_sample_wins_over_previous():
    first = compute(
        parse(fixture("local-first.txt")),
        Counters(uptime_s=0, cpu_total=0, cpu_idle=0, net_rx_bytes=0, net_tx_bytes=0),
        collected_at=AT,
    )
    raw = parse(fixture("local-first.txt"))
    expected = compute(raw, None, collected_at=AT).metrics.cpu_percent
    assert first.metrics.cpu_percent == expected


# -- hand-made variants ------------------------------------------------------------


def test_no_swap():
    text = replace_section(
        fixture("many-mounts.txt"),
        "meminfo",
        ["MemTotal: 1000 kB", "MemAvailable: 250 kB", "SwapTotal: 0 kB", "SwapFree: 0 kB"],
    )
    metrics = compute(parse(text), None, collected_at=AT).metrics
    assert (metrics.swap_percent, metrics.swap_total_bytes, metrics.swap_used_bytes) == (0.0, 0, 0)
    assert metrics.mem_percent == 75.0


def test_old_kernel_without_memavailable():
    text = replace_section(
        fixture("many-mounts.txt"),
        "meminfo",
        ["MemTotal: 1000 kB", "MemFree: 100 kB", "Buffers: 50 kB", "Cached: 250 kB"],
    )
    assert compute(parse(text), None, collected_at=AT).metrics.mem_used_bytes == 600 * 1024


def test_no_real_filesystem_gives_no_disk_percent():
    text = replace_section(
        fixture("many-mounts.txt"),
        "df",
        ["Filesystem 1024-blocks Used Available Capacity Mounted on", "tmpfs 100 1 99 1% /run"],
    )
    metrics = compute(parse(text), None, collected_at=AT).metrics
    assert metrics.disks == [] and metrics.disk_percent is None


def test_512_byte_df_blocks():
    text = replace_section(
        fixture("many-mounts.txt"),
        "df",
        ["Filesystem 512-blocks Used Available Capacity Mounted on", "/dev/vda2 2000 500 1500 25% /boot"],
    )
    (disk,) = parse(text).disks
    assert (disk.total_bytes, disk.used_bytes, disk.percent) == (2000 * 512, 500 * 512, 25.0)


def test_ipv6_only_host_with_only_loopback_and_one_interface():
    netdev = [
        "Inter-|   Receive                                                |  Transmit",
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed",
        "    lo: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0",
        "  eth0: 1234 10 0 0 0 0 0 0 4321 10 0 0 0 0 0 0",
    ]
    counters = parse(replace_section(fixture("many-mounts.txt"), "netdev", netdev)).counters
    assert (counters.net_rx_bytes, counters.net_tx_bytes) == (1234, 4321)


def test_noise_around_the_markers_is_ignored():
    clean = fixture("local-next.txt")
    noisy = "stty: standard input: Inappropriate ioctl for device\n@uptime\n1 1\n" + clean + "logout\n@procs\n99999\n"
    assert parse(noisy) == parse(clean)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_output_cut_short_is_detected(keep):
    text = fixture("local-first.txt")
    with pytest.raises(ParseError, match="cut short|missing"):
        parse(text[: int(len(text) * keep)])


def test_output_without_markers():
    with pytest.raises(ParseError, match="begin marker"):
        parse("sh: 1: cannot open /proc/stat: No such file\n")


def test_future_protocol_version_is_refused():
    with pytest.raises(ParseError, match="unsupported probe version"):
        parse(fixture("local-next.txt").replace(BEGIN_MARKER, "@@FLEETTOP-BEGIN v2@@"))


@pytest.mark.parametrize(
    "section, body",
    [
        ("uptime", ["nan 5"]),
        ("stat", ["cpu 1 2"]),
        ("loadavg", ["inf 0.1 0.1 1/2 3"]),
        ("procs", ["many"]),
        ("meminfo", ["MemFree: 5 kB"]),
        ("netdev", ["  eth0: x 1 2 3 4 5 6 7 8 9"]),
    ],
)
def test_malformed_sections_raise_parse_error(section, body):
    with pytest.raises(ParseError):
        parse(replace_section(fixture("many-mounts.txt"), section, body))


def test_parse_errors_are_one_line():
    text = replace_section(fixture("many-mounts.txt"), "netdev", ["  eth0: x\n\n\n 1 2 3 4 5 6 7 8 9"])
    with pytest.raises(ParseError) as caught:
        parse(text)
    assert "\n" not in str(caught.value)


# -- anything at all: a result or ParseError ----------------------------------------


def _check_any(text: str) -> None:
    try:
        raw = parse(text)
    except ParseError as exc:
        assert "\n" not in str(exc)
        return
    compute(raw, None, collected_at=AT)
    compute(raw, Counters(uptime_s=1, cpu_total=5, cpu_idle=2, net_rx_bytes=3, net_tx_bytes=4), collected_at=AT)


@given(st.text())
def test_arbitrary_text_gives_a_result_or_parse_error(text):
    _check_any(text)


_LINES = fixture("many-mounts.txt").splitlines() + fixture("local-first.txt").splitlines()


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.sampled_from(_LINES),
            st.sampled_from([BEGIN_MARKER, END_MARKER, "@df", "@mounts", "@stat", "@uptime"]),
            st.text(max_size=40),
        ),
        max_size=80,
    )
)
def test_shuffled_probe_lines_give_a_result_or_parse_error(lines):
    _check_any("\n".join(lines))


@given(st.data())
def test_mutated_real_output_gives_a_result_or_parse_error(data):
    lines = fixture("many-mounts.txt").splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    lines[index] = data.draw(st.text(max_size=60))
    _check_any("\n".join(lines))


_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_hostile_bytes_in_real_output_give_inert_names_or_parse_error(data):
    """Bytes (escapes, NULs, invalid UTF-8) spliced into a real answer, decoded as the SSH
    transport decodes them: a ParseError, or figures in range with names free of any
    control character (nothing a terminal would act on reaches a screen)."""
    raw = bytearray(fixture("many-mounts.txt").encode())
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at:at] = data.draw(
            st.binary(min_size=1, max_size=24)
            | st.sampled_from([b"\x1b[2J", b"\x1b]0;x\x07", b"[red]x[/]", b"\x00", b"\xff\xfe"])
        )
    text = bytes(raw).decode(errors="replace")
    try:
        result = compute(parse(text), None, collected_at=AT)
    except ParseError as exc:
        assert "\n" not in str(exc)
        return
    metrics = result.metrics
    for disk in metrics.disks:
        assert not _CONTROL_CHARS.search(disk.mount) and not _CONTROL_CHARS.search(disk.device), disk
        assert 0 <= disk.percent <= 100
    for value in (metrics.mem_percent, metrics.swap_percent, metrics.cpu_percent, metrics.disk_percent):
        assert value is None or 0 <= value <= 100
