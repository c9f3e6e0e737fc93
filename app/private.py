"""fleettop's own files kept the user's own, as OpenSSH's StrictModes keeps ~/.ssh.

data_dir holds what decides where passwords go: known_hosts, the database, secret.key. A
directory that another user owns, or may write to, lets them plant any of these (a known_hosts
with their key for your hosts is a silent man in the middle). So such a directory is refused
with one line naming it and the fix; data_dir is created 0700 and tightened to 0700. Files in
it are opened without following links and must be the user's; files fleettop reads but does
not own (ssh.known_hosts, key files) must be regular files no other user may write.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
import tempfile
from pathlib import Path

from fleettop.errors import FleettopError

MAX_KEY_FILE_BYTES = 64 * 1024  # an OpenSSH private key is a few KiB; anything larger is not one
READ_CHUNK = 64 * 1024


class UnsafePath(FleettopError):
    """A file or directory another user could have written: not used."""


def private_dir(path: Path, *, tighten: bool = True) -> Path:
    """`path` as a directory no other user can change: created 0700 (with its parents) when
    missing, refused when another user owns it or group or others may write to it. With
    `tighten` (data_dir), group and other bits are then taken away."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = os.stat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePath(f"{path} is not a directory")
    _check_owner_and_mode(path, info, owners=(os.geteuid(),))
    if tighten and stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def tighten_own_file(path: Path) -> None:
    """An existing file of fleettop's (the database and its -wal and -shm) made 0600; refused when
    another user owns it. A missing one is fine."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    if info.st_uid != os.geteuid():
        raise UnsafePath(_foreign(path, info.st_uid))
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o600)


def _open_regular(path: Path, flags: int, owners: tuple[int, ...], mode: int = 0o600) -> tuple[int, os.stat_result]:
    """A file descriptor of `path` and its stat: a regular file (never a FIFO or a device that
    would hang or fill memory) owned by one of `owners` and writable by no other user."""
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise _refusal(path, exc) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePath(f"{path} is not a regular file")
        _check_owner_and_mode(path, info, owners=owners)
        return fd, info
    except BaseException:
        os.close(fd)
        raise


def open_own_file(path: Path, flags: int, mode: int = 0o600) -> int:
    """A file descriptor of `path`, a regular file of this user's that no other user may write,
    opened without following a link (O_NOFOLLOW: a planted link is refused, not followed)."""
    fd, _ = _open_regular(path, flags | os.O_NOFOLLOW, (os.geteuid(),), mode)
    os.set_blocking(fd, True)
    return fd


def read_trusted_file(path: Path, *, follow_links: bool, limit: int | None = None) -> bytes:
    """The bytes of a regular file that only this user (or root) may write, read with a bound.
    `follow_links=False` refuses a link at `path` itself. Raises UnsafePath, or
    FileNotFoundError when it does not exist."""
    fd, info = _open_regular(path, os.O_RDONLY | (0 if follow_links else os.O_NOFOLLOW), (os.geteuid(), 0))
    try:
        if limit is not None and info.st_size > limit:
            raise UnsafePath(f"{path} is larger than {limit // 1024} KiB")
        data = bytearray()
        while chunk := os.read(fd, READ_CHUNK):
            data += chunk
            if limit is not None and len(data) > limit:  # grew while read
                raise UnsafePath(f"{path} is larger than {limit // 1024} KiB")
        return bytes(data)
    finally:
        os.close(fd)


def check_key_file(path: Path) -> None:
    """Refuse a key file that exists and is not a regular file of at most MAX_KEY_FILE_BYTES
    (/dev/zero, a FIFO, a directory). A missing one is fine here: it may exist only on the
    machines that collect."""
    try:
        read_trusted_file(path, follow_links=False, limit=MAX_KEY_FILE_BYTES)
    except FileNotFoundError:
        pass


def replace_own_file(path: Path, data: bytes) -> None:
    """Write `path` whole, atomically: a new file (O_EXCL, 0600) beside it, then renamed over
    it. A reader sees the old content or the new, never a part; a link at `path` is replaced,
    not followed."""
    fd, draft = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(draft, path)
    except BaseException:
        Path(draft).unlink(missing_ok=True)
        raise


def child_environment() -> dict[str, str]:
    """The environment for a program fleettop starts (redis-server, the local probe's shell):
    this one without fleettop's own variables, which may hold the secret key or a database URL
    with its password."""
    return {name: value for name, value in os.environ.items() if not name.startswith("FLEETTOP_")}


def _check_owner_and_mode(path: Path, info: os.stat_result, owners: tuple[int, ...]) -> None:
    if info.st_uid not in owners:
        raise UnsafePath(_foreign(path, info.st_uid))
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o002 or (mode & 0o020 and not _private_group(info.st_gid)):
        raise UnsafePath(f"{path} can be written by other users (mode {mode:04o}): chmod go-w {path}")


def _foreign(path: Path, uid: int) -> str:
    return (
        f"{path} belongs to another user (uid {uid}): fleettop uses only files and directories of "
        "your own here (chown it, or choose another path)"
    )


def _private_group(gid: int) -> bool:
    """Whether `gid` is this user's private group (named as the user, no other member: the
    default of Debian, Ubuntu and Fedora, whose umask 002 makes files group-writable): its
    write bit lets no one else in."""
    try:
        group, user = grp.getgrgid(gid), pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return False
    return gid == os.getegid() and group.gr_name == user and set(group.gr_mem) <= {user}


def _refusal(path: Path, exc: OSError) -> OSError | UnsafePath:
    """A link met with O_NOFOLLOW as UnsafePath; any other failure (missing, no permission) as it is."""
    if exc.errno == errno.ELOOP:
        return UnsafePath(f"{path} is a symbolic link: fleettop does not follow one here (give the file itself)")
    return exc
