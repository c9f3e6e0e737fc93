"""The probe's text, turned into figures. Pure functions: no I/O, no clock.

`parse` reads what app/probe/script.sh prints (and what fleettop.probe.sim renders in the
very same format); `compute` turns one parsed sample plus the host's previous
counters into Metrics and the counters to keep for next time.
"""

from __future__ import annotations

import heapq
import re
from datetime import datetime, timezone

from pydantic import BaseModel

from fleettop.domain import Counters, DiskUsage, Metrics
from fleettop.text import CONTROL

BEGIN_MARKER = "@@FLEETTOP-BEGIN v1@@"
END_MARKER = "@@FLEETTOP-END@@"
_BEGIN_PREFIX = "@@FLEETTOP-BEGIN "

# Filesystems that hold no user data (node_exporter's default exclusions, plus
# memory-backed ones): they never count as disks.
PSEUDO_FILESYSTEMS = frozenset(
    {
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "efivarfs",
        "erofs",
        "fuse.gvfsd-fuse",
        "fuse.lxcfs",
        "fuse.portal",
        "fusectl",
        "hugetlbfs",
        "iso9660",
        "mqueue",
        "nsfs",
        "nfsd",
        "overlay",
        "proc",
        "procfs",
        "pstore",
        "ramfs",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "squashfs",
        "sysfs",
        "tmpfs",
        "tracefs",
        "zram",
    }
)
_UNSIGNED = re.compile(r"\d{1,30}")
_DECIMAL = re.compile(r"\d{1,30}(?:\.\d{1,30})?")
_DF_ROW = re.compile(r"(\S+)?\s+(\d{1,30})\s+(\d{1,30})\s+(\d{1,30})\s+(?:\d{1,3}%|-)\s+(/.*)")
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
# A filesystem type as the kernel names them (ext4, fuse.sshfs, nfs4): anything else is "?".
_FSTYPE = re.compile(r"[A-Za-z0-9._-]{1,64}")
NAME_MAX = 256  # a mount or device name is cut here
# Disks kept per sample, the fullest first: a host cannot make a sample (stored in SQL and
# cached in Redis) grow past ~160 KiB however many mounts it lists.
MAX_DISKS = 256


class ParseError(ValueError):
    """The probe's output is not what the script prints; the message is one line."""


class RawSample(BaseModel):
    """One probe answer, decoded but not yet interpreted against earlier counters."""

    counters: Counters
    first_counters: Counters | None = None  # the in-script earlier sample on first contact
    load1: float
    load5: float
    load15: float
    procs: int
    mem_total_bytes: int
    mem_available_bytes: int
    swap_total_bytes: int
    swap_free_bytes: int
    disks: list[DiskUsage]


def parse(text: str) -> RawSample:
    """Decode the probe's output (noise outside the markers ignored), or raise ParseError."""
    sections = _sections(text)
    first = None
    if "first-uptime" in sections:
        first = _counters(sections, "first-")
    meminfo = _meminfo(_section(sections, "meminfo"))
    if "MemTotal" not in meminfo:
        raise ParseError("meminfo has no MemTotal")
    available = meminfo.get("MemAvailable")
    if available is None:  # kernels before 3.14
        available = meminfo.get("MemFree", 0) + meminfo.get("Buffers", 0) + meminfo.get("Cached", 0)
    load1, load5, load15 = _loadavg(_section(sections, "loadavg"))
    return RawSample(
        counters=_counters(sections, ""),
        first_counters=first,
        load1=load1,
        load5=load5,
        load15=load15,
        procs=_single_int(_section(sections, "procs"), "procs"),
        mem_total_bytes=meminfo["MemTotal"],
        mem_available_bytes=min(available, meminfo["MemTotal"]),
        swap_total_bytes=meminfo.get("SwapTotal", 0),
        swap_free_bytes=min(meminfo.get("SwapFree", 0), meminfo.get("SwapTotal", 0)),
        disks=real_disks(_section(sections, "df"), _mount_types(_section(sections, "mounts"))),
    )


class ProbeResult(BaseModel):
    metrics: Metrics
    counters: Counters  # to keep, and pass as `previous` to the next collection of this host


def compute(raw: RawSample, previous: Counters | None, *, collected_at: datetime | None = None) -> ProbeResult:
    """Metrics from one sample; CPU % and network rates by delta against the earlier counters.

    The earlier counters are the in-script first sample when there is one, else
    `previous`; none when the host rebooted since (its uptime went down).
    `collected_at` defaults to now.
    """
    base = raw.first_counters or previous
    now = raw.counters
    cpu_percent = net_rx_bps = net_tx_bps = None
    if base is not None and now.uptime_s >= base.uptime_s:
        total = now.cpu_total - base.cpu_total
        idle = now.cpu_idle - base.cpu_idle
        if total > 0 and 0 <= idle <= total:  # counters lower than before: rebooted since
            cpu_percent = 100.0 * (total - idle) / total
        elapsed = now.uptime_s - base.uptime_s
        received = now.net_rx_bytes - base.net_rx_bytes
        sent = now.net_tx_bytes - base.net_tx_bytes
        if elapsed > 0 and received >= 0 and sent >= 0:  # an interface gone or reset: no rate this time
            net_rx_bps = received / elapsed
            net_tx_bps = sent / elapsed
    mem_used = raw.mem_total_bytes - raw.mem_available_bytes
    swap_used = raw.swap_total_bytes - raw.swap_free_bytes
    metrics = Metrics(
        collected_at=collected_at or datetime.now(timezone.utc),
        cpu_percent=cpu_percent,
        mem_percent=_percent(mem_used, raw.mem_total_bytes),
        mem_used_bytes=mem_used,
        mem_total_bytes=raw.mem_total_bytes,
        swap_percent=_percent(swap_used, raw.swap_total_bytes),
        swap_used_bytes=swap_used,
        swap_total_bytes=raw.swap_total_bytes,
        disk_percent=max((disk.percent for disk in raw.disks), default=None),
        disks=raw.disks,
        load1=raw.load1,
        load5=raw.load5,
        load15=raw.load15,
        procs=raw.procs,
        uptime_s=now.uptime_s,
        net_rx_bps=net_rx_bps,
        net_tx_bps=net_tx_bps,
    )
    return ProbeResult(metrics=metrics, counters=now)


def real_disks(df_lines: list[str], mount_types: dict[str, str]) -> list[DiskUsage]:
    """Real filesystems from `df -Pk` output: pseudo filesystems dropped, each device once.

    A device mounted at several places (bind mounts) is counted once, under its
    shortest mount point. Percent is used / (used + available), as df computes it.
    At most MAX_DISKS, the fullest.
    """
    unit = 1024
    by_device: dict[str, tuple[str, str, str, int, int, int, float]] = {}  # models made only for the ones kept
    pending_device = ""
    for line in df_lines:
        header = re.match(r"Filesystem\s+(\d+)-blocks", line)
        if header:
            unit = int(header.group(1))
            continue
        row = _DF_ROW.fullmatch(line)
        if row is None:
            # Some df implementations put a long device name on a line of its own.
            fields = line.split()
            pending_device = fields[0] if len(fields) == 1 else ""
            continue
        device = row.group(1) or pending_device
        pending_device = ""
        total, used, available = (int(row.group(i)) * unit for i in (2, 3, 4))
        mount = row.group(5)
        fstype = mount_types.get(mount, "")
        mount, device = _printable(mount), _printable(device)
        if not device or fstype in PSEUDO_FILESYSTEMS or used + available == 0:
            continue
        known = by_device.get(device)
        if known is None or len(mount) < len(known[0]):
            by_device[device] = (mount, device, fstype, used, total, available, 100.0 * used / (used + available))
    kept = heapq.nlargest(MAX_DISKS, by_device.values(), key=lambda disk: disk[6])
    return [
        DiskUsage(
            mount=mount,
            device=device,
            fstype=fstype,
            used_bytes=used,
            total_bytes=total,
            avail_bytes=avail,
            percent=percent,
        )
        for mount, device, fstype, used, total, avail, percent in sorted(kept)
    ]


def _percent(used: int, total: int) -> float:
    return 100.0 * used / total if total > 0 else 0.0


def _sections(text: str) -> dict[str, list[str]]:
    lines = text.splitlines()
    begins = [i for i, line in enumerate(lines) if line.startswith(_BEGIN_PREFIX)]
    if not begins:
        raise ParseError("no probe output (begin marker missing)")
    start = begins[-1]
    if lines[start].rstrip() != BEGIN_MARKER:
        raise ParseError(f"unsupported probe version: {lines[start].strip()[:60]}")
    try:
        end = lines.index(END_MARKER, start)
    except ValueError:
        raise ParseError("probe output cut short (end marker missing)") from None
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines[start + 1 : end]:
        if line.startswith("@"):
            current = sections.setdefault(line[1:].strip(), [])
        elif current is not None:
            current.append(line)
    return sections


def _section(sections: dict[str, list[str]], name: str) -> list[str]:
    try:
        return sections[name]
    except KeyError:
        raise ParseError(f"section {name} missing") from None


def _counters(sections: dict[str, list[str]], prefix: str) -> Counters:
    uptime_fields = " ".join(_section(sections, prefix + "uptime")).split()
    if not uptime_fields or not _DECIMAL.fullmatch(uptime_fields[0]):
        raise ParseError(f"{prefix}uptime is not a number")
    total, idle = _cpu(_section(sections, prefix + "stat"), prefix)
    rx, tx = _network(_section(sections, prefix + "netdev"), prefix)
    return Counters(uptime_s=float(uptime_fields[0]), cpu_total=total, cpu_idle=idle, net_rx_bytes=rx, net_tx_bytes=tx)


def _cpu(lines: list[str], prefix: str) -> tuple[int, int]:
    """Total and idle (idle + iowait) jiffies of the aggregate `cpu` line.

    Only the first eight fields count: guest time is already inside user and nice.
    """
    for line in lines:
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = fields[1:9]
            if len(values) < 4 or not all(_UNSIGNED.fullmatch(v) for v in values):
                break
            numbers = [int(v) for v in values]
            return sum(numbers), numbers[3] + (numbers[4] if len(numbers) > 4 else 0)
    raise ParseError(f"{prefix}stat has no valid cpu line")


def _network(lines: list[str], prefix: str) -> tuple[int, int]:
    """Received and transmitted bytes summed over every interface but loopback."""
    received = transmitted = 0
    for line in lines:
        name, colon, rest = line.partition(":")
        if not colon or "|" in line:
            continue
        fields = rest.split()
        if len(fields) < 9 or not (_UNSIGNED.fullmatch(fields[0]) and _UNSIGNED.fullmatch(fields[8])):
            raise ParseError(f"{prefix}netdev line malformed: {line.strip()[:60]}")
        if name.strip() != "lo":
            received += int(fields[0])
            transmitted += int(fields[8])
    return received, transmitted


def _loadavg(lines: list[str]) -> tuple[float, float, float]:
    fields = " ".join(lines).split()
    if len(fields) < 3 or not all(_DECIMAL.fullmatch(v) for v in fields[:3]):
        raise ParseError("loadavg malformed")
    return float(fields[0]), float(fields[1]), float(fields[2])


def _single_int(lines: list[str], name: str) -> int:
    fields = " ".join(lines).split()
    if len(fields) != 1 or not _UNSIGNED.fullmatch(fields[0]):
        raise ParseError(f"{name} is not a number")
    return int(fields[0])


def _meminfo(lines: list[str]) -> dict[str, int]:
    """Byte values of `Key: N kB` lines."""
    values = {}
    for line in lines:
        key, colon, rest = line.partition(":")
        fields = rest.split()
        if not colon or not fields or not _UNSIGNED.fullmatch(fields[0]):
            raise ParseError(f"meminfo line malformed: {line.strip()[:60]}")
        values[key.strip()] = int(fields[0]) * (1024 if fields[1:] == ["kB"] else 1)
    return values


def _printable(name: str) -> str:
    """Control characters (ESC among them) in a host's mount or device names shown as "?":
    names travel to the dashboard, the CLI and exports, never as terminal escapes."""
    return CONTROL.sub("?", name)[:NAME_MAX]


def _mount_types(lines: list[str]) -> dict[str, str]:
    """Mount point -> fstype from /proc/mounts; a later mount over the same point wins."""
    types = {}
    for line in lines:
        fields = line.split()
        if len(fields) >= 3:
            types[_unescape(fields[1])] = fields[2] if _FSTYPE.fullmatch(fields[2]) else "?"
    return types


def _unescape(field: str) -> str:
    """/proc/mounts writes a space in a path as \\040 (and tab, newline, backslash likewise)."""
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)
