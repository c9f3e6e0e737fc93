"""Servers listed elsewhere: the concrete `Host` entries of an OpenSSH client config, and the
hosts of an Ansible inventory (INI or YAML), as plain records for `fleettop servers import`.

Files are only read, never run: no `Match exec`, no ProxyCommand, no dynamic inventory script,
no Jinja template, no YAML tag (`!vault`) is evaluated. Reading follows `Include` as OpenSSH
does (relative to ~/.ssh, globs, at most MAX_DEPTH deep). What a file cannot give becomes a
note or a one-line InventoryError naming the file and line.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import shlex
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 16  # Include nesting, as OpenSSH's READCONF_MAX_DEPTH
MAX_GROUP_DEPTH = 50  # children within children
MAX_RANGE_HOSTS = 10_000  # hosts one Ansible range pattern (web[1:99999]) may expand to
WILDCARD_CHARS = frozenset("*?!")
# Ansible's implicit groups: every host is in `all`, a host of no group in `ungrouped`.
IMPLICIT_GROUPS = frozenset({"all", "ungrouped"})
_SSH_LINE_RE = re.compile(r"([A-Za-z]+)(?:\s*=\s*|\s+|$)(.*)")
_RANGE_RE = re.compile(r"\[([^\[\]:]+):([^\[\]:]+)(?::(\d+))?\]")


class InventoryError(Exception):
    """A file that cannot be imported; the message is one line, starting with where."""


@dataclass(frozen=True)
class ImportedHost:
    """One server as another tool lists it. `host` is what to connect to: for an ssh config
    entry its alias (the ssh config resolves HostName, Port, User... at connect time)."""

    name: str
    host: str
    origin: str  # file:line
    port: int | None = None
    username: str | None = None
    tags: tuple[str, ...] = ()
    problem: str | None = None  # why it cannot be imported as it is (a template, an encrypted value)


@dataclass
class ImportResult:
    hosts: list[ImportedHost] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # patterns skipped, includes that matched nothing


def read_text(path: Path) -> str:
    """A regular file's text, at most MAX_FILE_BYTES (a FIFO or /dev/zero is refused, not read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise InventoryError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InventoryError(f"{path}: is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise InventoryError(f"{path}: is not a regular file")
        data = os.read(fd, MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InventoryError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise InventoryError(f"{path}: is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InventoryError(f"{path}: is not UTF-8 text (byte {exc.start})") from None


# -- OpenSSH client config --------------------------------------------------------------


def ssh_config_hosts(path: Path, ssh_dir: Path | None = None) -> ImportResult:
    """The concrete aliases of `Host` lines (no * ? or ! in them), first occurrence kept, in
    the order ssh reads them, Include followed. `ssh_dir`: where a relative Include points
    (~/.ssh, as for OpenSSH's user config)."""
    result = ImportResult()
    seen: set[str] = set()
    base = ssh_dir if ssh_dir is not None else Path("~/.ssh").expanduser()
    for alias, origin in _ssh_config_aliases(path, base, 0, result, set()):
        if alias in seen:
            continue
        seen.add(alias)
        result.hosts.append(ImportedHost(name=alias, host=alias, origin=origin))
    return result


def _ssh_config_aliases(
    path: Path, base: Path, depth: int, result: ImportResult, reading: set[Path]
) -> Iterator[tuple[str, str]]:
    if depth > MAX_DEPTH:
        raise InventoryError(f"{path}: Include nested more than {MAX_DEPTH} deep (a loop?)")
    resolved = path.resolve()
    if resolved in reading:
        raise InventoryError(f"{path}: includes itself")
    text = read_text(path)
    reading = reading | {resolved}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, args = _ssh_config_line(line, f"{path}:{number}")
        if keyword == "host":
            for token in args:
                if WILDCARD_CHARS & set(token):
                    result.notes.append(f"{path}:{number}: Host pattern {token!r} skipped: not one server")
                else:
                    yield token, f"{path}:{number}"
        elif keyword == "include":
            for pattern in args:
                matched = _include_paths(pattern, base)
                if not matched:
                    result.notes.append(f"{path}:{number}: Include {pattern!r} matched no file")
                for included in matched:
                    yield from _ssh_config_aliases(included, base, depth + 1, result, reading)


def _ssh_config_line(line: str, where: str) -> tuple[str, list[str]]:
    """The keyword (lower case) and arguments of a line, as ssh splits it: `Key value`,
    `Key=value`, quoted words."""
    match = _SSH_LINE_RE.match(line)
    if match is None:
        raise InventoryError(f"{where}: expected a keyword and its value, got {line[:40]!r}")
    try:
        args = shlex.split(match.group(2))
    except ValueError as exc:
        raise InventoryError(f"{where}: {exc}") from None
    return match.group(1).lower(), args


def _include_paths(pattern: str, base: Path) -> list[Path]:
    path = Path(pattern).expanduser()
    if not path.is_absolute():
        path = base / path
    # glob(3) as OpenSSH uses it: `**` is no deeper than `*` (pathlib's would walk the whole tree).
    return sorted(Path(found) for found in glob.glob(str(path), recursive=False) if Path(found).is_file())


# -- Ansible inventories ------------------------------------------------------------------


@dataclass
class _Group:
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> its vars
    children: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)  # host -> file:line


class _Tagged:
    """A value behind a YAML tag (`!vault`, `!unsafe`): not evaluated."""

    def __init__(self, tag: str):
        self.tag = tag


class _InventoryLoader(yaml.SafeLoader):
    pass


_InventoryLoader.add_multi_constructor("!", lambda loader, suffix, node: _Tagged("!" + suffix))


def ansible_hosts(path: Path) -> ImportResult:
    """The hosts of an INI or YAML inventory (by extension: .yml, .yaml, .json are YAML; else
    INI, or YAML when the file is a mapping). Groups (with the groups they are children of)
    become tags; ansible_host, ansible_port and ansible_user the address, port and user, a
    host's own vars before its groups', a child group's before its parent's."""
    text = read_text(path)
    if text.startswith("#!"):
        raise InventoryError(
            f"{path}: is a script (a dynamic inventory): fleettop runs nothing; save its output with "
            f"`ansible-inventory -i {path} --list -y > hosts.yml` and import that"
        )
    if path.suffix.lower() in {".yml", ".yaml", ".json"} or _looks_like_yaml(text):
        groups = _yaml_groups(path, text)
    else:
        groups = _ini_groups(path, text)
    return _hosts_of(groups)


def _looks_like_yaml(text: str) -> bool:
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        return stripped == "---" or (stripped.endswith(":") and not stripped.startswith("["))
    return False


def _ini_groups(path: Path, text: str) -> dict[str, _Group]:
    groups: dict[str, _Group] = {"all": _Group(), "ungrouped": _Group()}
    group, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f"{path}:{number}"
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise InventoryError(f"{where}: section header {line!r} has no closing ']'")
            group, _, kind = line[1:-1].strip().partition(":")
            kind = kind or "hosts"
            if kind not in {"hosts", "children", "vars"}:
                raise InventoryError(f"{where}: unknown section kind {kind!r} (expected children or vars)")
            groups.setdefault(group, _Group())
            continue
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as exc:
            raise InventoryError(f"{where}: {exc}") from None
        if not tokens:
            continue
        if kind == "vars":
            key, equals, value = line.partition("=")
            if not equals:
                raise InventoryError(f"{where}: expected key=value in [{group}:vars]")
            groups[group].vars[key.strip()] = _ini_value(value.strip())
        elif kind == "children":
            groups.setdefault(tokens[0], _Group())
            groups[group].children.append(tokens[0])
        else:
            host_vars = {}
            for token in tokens[1:]:
                key, equals, value = token.partition("=")
                if not equals:
                    raise InventoryError(f"{where}: expected key=value after the host name, got {token!r}")
                host_vars[key] = _ini_value(value)
            for name in _expand_range(tokens[0], where):
                groups[group].hosts.setdefault(name, {}).update(host_vars)
                groups[group].origins.setdefault(name, where)
    return groups


def _ini_value(text: str) -> Any:
    return int(text) if text.isdigit() else text


def _yaml_groups(path: Path, text: str) -> dict[str, _Group]:
    try:
        data = yaml.load(text, Loader=_InventoryLoader)  # noqa: S506 -- safe: tags become _Tagged
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise InventoryError(f"{path}{line}: malformed YAML: {getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InventoryError(f"{path}: the top level must be a mapping of groups (all:, webservers:, ...)")
    groups: dict[str, _Group] = {"all": _Group(), "ungrouped": _Group()}
    for name, body in data.items():
        _yaml_group(path, groups, str(name), body, ())
    return groups


def _yaml_group(path: Path, groups: dict[str, _Group], name: str, body: Any, within: tuple[str, ...]) -> None:
    if name in within:  # a YAML alias can make a group its own descendant
        raise InventoryError(f"{path}: group {name!r} contains itself (through {' > '.join(within)})")
    if len(within) > MAX_GROUP_DEPTH:
        raise InventoryError(f"{path}: groups nested more than {MAX_GROUP_DEPTH} deep under {within[0]!r}")
    group = groups.setdefault(name, _Group())
    if body is None:
        return
    if not isinstance(body, dict):
        raise InventoryError(f"{path}: group {name!r} must be a mapping of hosts, children and vars")
    unknown = set(body) - {"hosts", "children", "vars"}
    if unknown:
        raise InventoryError(
            f"{path}: group {name!r} has {sorted(map(str, unknown))[0]!r}: expected hosts, children or vars"
        )
    for key, value in (body.get("vars") or {}).items():
        group.vars[str(key)] = value
    hosts = body.get("hosts") or {}
    if not isinstance(hosts, dict):
        raise InventoryError(f"{path}: group {name!r}: hosts must be a mapping of host names")
    for pattern, host_vars in hosts.items():
        for host in _expand_range(str(pattern), f"{path}: group {name!r}"):
            group.hosts.setdefault(host, {}).update(host_vars if isinstance(host_vars, dict) else {})
            group.origins.setdefault(host, f"{path}: group {name}")
    children = body.get("children") or {}
    if not isinstance(children, dict):
        raise InventoryError(f"{path}: group {name!r}: children must be a mapping of groups")
    for child, child_body in children.items():
        group.children.append(str(child))
        _yaml_group(path, groups, str(child), child_body, (*within, name))


def _expand_range(pattern: str, where: str) -> list[str]:
    """Ansible's host ranges: web[01:03] -> web01 web02 web03; [a:c]; [1:9:2] with a stride."""
    match = _RANGE_RE.search(pattern)
    if match is None:
        return [pattern]
    start, end, stride = match.group(1), match.group(2), int(match.group(3) or 1) or 1
    head, tail = pattern[: match.start()], pattern[match.end() :]
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") else 0
        numbers = range(int(start), int(end) + 1, stride)
        if len(numbers) > MAX_RANGE_HOSTS:  # before a list of them is made
            raise InventoryError(f"{where}: host pattern {pattern!r} gives more than {MAX_RANGE_HOSTS} hosts")
        values = [str(number).zfill(width) for number in numbers]
    elif len(start) == 1 and len(end) == 1 and start.isalpha() and end.isalpha():
        values = [chr(code) for code in range(ord(start), ord(end) + 1, stride)]
    else:
        raise InventoryError(f"{where}: host range {match.group(0)!r} is not [from:to] of numbers or letters")
    names: list[str] = []
    for value in values:  # counted as they come: ranges side by side multiply
        names += _expand_range(f"{head}{value}{tail}", where)
        if len(names) > MAX_RANGE_HOSTS:
            raise InventoryError(f"{where}: host pattern {pattern!r} gives more than {MAX_RANGE_HOSTS} hosts")
    return names


def _parents(groups: dict[str, _Group]) -> dict[str, list[str]]:
    parents: dict[str, list[str]] = {}
    for name, group in groups.items():
        for child in group.children:
            parents.setdefault(child, []).append(name)
    return parents


def _ancestry(start: Iterable[str], parents: dict[str, list[str]]) -> list[str]:
    """The groups, then their parents, breadth first, each once: nearest group first."""
    order: list[str] = []
    queue = list(start)
    while queue:
        name = queue.pop(0)
        if name in order:
            continue
        order.append(name)
        queue.extend(parents.get(name, []))
    return order


HOST_KEYS = ("ansible_host", "ansible_ssh_host")
PORT_KEYS = ("ansible_port", "ansible_ssh_port")
USER_KEYS = ("ansible_user", "ansible_ssh_user")


def _hosts_of(groups: dict[str, _Group]) -> ImportResult:
    parents = _parents(groups)
    direct: dict[str, list[str]] = {}
    host_vars: dict[str, dict[str, Any]] = {}
    origins: dict[str, str] = {}
    for name, group in groups.items():
        for host, values in group.hosts.items():
            direct.setdefault(host, []).append(name)
            host_vars.setdefault(host, {}).update(values)
            origins.setdefault(host, group.origins.get(host, ""))
    result = ImportResult()
    for host, own_groups in direct.items():
        chain = [g for g in _ancestry(own_groups, parents) if g != "all"] + ["all"]
        layers = [host_vars[host]] + [groups[g].vars for g in chain]

        def first(keys: tuple[str, ...], layers: list[dict[str, Any]] = layers) -> Any:
            return next((layer[key] for layer in layers for key in keys if key in layer), None)

        address, port, user = first(HOST_KEYS), first(PORT_KEYS), first(USER_KEYS)
        problem = _unusable(address, port, user)
        tags = tuple(g for g in chain if g not in IMPLICIT_GROUPS)
        result.hosts.append(
            ImportedHost(
                name=host,
                host=str(address) if address is not None and problem is None else host,
                origin=origins[host],
                port=int(port) if problem is None and port is not None else None,
                username=str(user) if problem is None and user is not None else None,
                tags=tags,
                problem=problem,
            )
        )
    return result


def _unusable(address: Any, port: Any, user: Any) -> str | None:
    for key, value in (("ansible_host", address), ("ansible_port", port), ("ansible_user", user)):
        if isinstance(value, _Tagged):
            return f"{key} is {value.tag}-tagged: not evaluated"
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            return f"{key} is a template ({value}): not evaluated"
        if value is not None and not isinstance(value, (str, int)):
            return f"{key} must be text, got {type(value).__name__}"
    if port is not None and not (str(port).isdigit() and 1 <= int(port) <= 65535):
        return f"ansible_port {port!r} is not a port number"
    return None


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether a name matches any of the shell-style patterns (`--match 'web-*'`)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
