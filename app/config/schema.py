"""What a config may say: the sections of Settings (pydantic models), and the checks their
fields share with the CLI and the TUI form (names, hosts, users, tags, jump hosts, URLs, tokens).

Loading a file is fleettop.config.loader's; saying what is wrong, fleettop.config.problems'.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fleettop.domain import Thresholds
from fleettop.jumps import format_jump, parse_jump
from fleettop.rollup import parse_duration

_T = TypeVar("_T")

DEFAULT_DATA_DIR = Path("~/.local/share/fleettop")
MIN_INTERVAL = 10

# Used with fullmatch: `$` would also accept a trailing newline.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_USER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_HOST_LABEL_RE = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_ZONE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # an IPv6 zone: an interface name or index


def check_path(path: Path) -> Path:
    """A path the OS can take: no NUL character (open() and mkdir() raise ValueError on one)."""
    if "\x00" in str(path):
        raise ValueError("must not contain a NUL character")
    return path


def expand_user(path: Path) -> Path:
    """`~` and `~user` expanded; a `~user` naming nobody is a ValueError (not a RuntimeError)."""
    check_path(path)
    try:
        return path.expanduser()
    except RuntimeError:
        head = str(path).split("/", 1)[0]
        raise ValueError(f"cannot expand {head!r}: no such user, or no home directory") from None


def check_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise ValueError("must be 1-63 characters of letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


def check_host(value: str) -> str:
    """A DNS name (RFC 1123) or an IPv4/IPv6 address; nothing a shell could interpret."""
    candidate = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        pass
    else:
        # ip_address takes any text after an IPv6 '%' as the zone: control characters too.
        _, percent, zone = candidate.partition("%")
        if percent and not _ZONE_RE.fullmatch(zone):
            raise ValueError("has an IPv6 zone that is not an interface name")
        return candidate
    name = value[:-1] if value.endswith(".") else value
    if len(name) > 253 or not name or not all(_HOST_LABEL_RE.fullmatch(label) for label in name.split(".")):
        raise ValueError("is not a valid host name or IP address")
    return value


def check_username(value: str) -> str:
    if not _USER_RE.fullmatch(value):
        raise ValueError("is not a valid user name")
    return value


def check_tags(values: list[str]) -> list[str]:
    """Tags follow the name rules; each once, in the order given (the first tag's group wins)."""
    for value in values:
        if not _NAME_RE.fullmatch(value):
            raise ValueError(
                f"tag {value!r} must be 1-63 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
    return list(dict.fromkeys(values))


def check_jump(value: str | None) -> str | None:
    """A jump host spec (`[user@]host[:port]`, a comma-separated chain, a server's name, or
    `none`), each hop's host and user held to the rules of a server's; written back normalized."""
    if value is None:
        return None
    hops = parse_jump(value)
    for index, hop in enumerate(hops, 1):
        try:
            check_host(hop.host)
            if hop.username is not None:
                check_username(hop.username)
        except ValueError as exc:
            raise ValueError(f"hop {index} {str(hop)!r}: {exc}") from None
    return format_jump(hops)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class ThresholdOverrides(_Section):
    """Per-server thresholds; a missing one takes `defaults.thresholds`."""

    cpu: float | None = Field(None, ge=0, le=100)
    ram: float | None = Field(None, ge=0, le=100)
    disk: float | None = Field(None, ge=0, le=100)

    def resolve(self, defaults: Thresholds) -> Thresholds:
        return defaults.model_copy(update=self.model_dump(exclude_none=True))


AuthMethod = Literal["agent", "key", "password"]
Transport = Literal["ssh", "local"]


class ServerConfig(_Section):
    """One server, as written in the config file, typed at the CLI or in the TUI form."""

    name: str
    host: str
    port: int = Field(22, ge=1, le=65535)
    username: str | None = None
    transport: Transport = "ssh"
    auth: AuthMethod = "agent"
    key_file: Path | None = None
    interval: int | None = Field(None, ge=MIN_INTERVAL)
    enabled: bool = True
    thresholds: ThresholdOverrides = Field(default_factory=ThresholdOverrides)
    tags: list[str] = Field(default_factory=list)
    jump: str | None = None  # jumps.parse_jump; None: a group's, else the ssh config's ProxyJump

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return check_tags(value)

    @field_validator("jump")
    @classmethod
    def _jump(cls, value: str | None) -> str | None:
        return check_jump(value)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return check_host(value)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        return None if value is None else check_username(value)

    @field_validator("key_file")
    @classmethod
    def _key_file(cls, value: Path | None) -> Path | None:
        return None if value is None else check_path(value)


REDIS_SCHEMES = ("redis", "rediss", "unix")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]{0,31}$")


def check_url_scheme(url: str | None, schemes: tuple[str, ...]) -> str | None:
    """A URL with one of `schemes`; the message names the scheme only, never the URL (it may hold a password)."""
    if url is None:
        return None
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme.lower() not in schemes:
        expected = ", ".join(f"{name}://" for name in schemes)
        got = f"got {scheme}://" if _SCHEME_RE.match(scheme) else "got no scheme"
        raise ValueError(f"must start with {expected} ({got})")
    return url


class DatabaseConfig(_Section):
    url: str | None = None  # None: SQLite file in data_dir


class RedisConfig(_Section):
    url: str | None = None  # None: an embedded Redis on a unix socket in data_dir
    prefix: str = "fleettop:"

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        return check_url_scheme(value, REDIS_SCHEMES)


class WorkerConfig(_Section):
    concurrency: int = Field(5, ge=1, le=1000)
    retries: int = Field(3, ge=1, le=20)  # attempts in all
    retry_backoff: float = Field(5, ge=0)  # first wait; doubles each retry
    shutdown_grace: float = Field(10, ge=0)


class QueueConfig(_Section):
    completed_max_age: int = Field(3600, ge=0)
    completed_keep: int = Field(100, ge=0)
    failed_max_age: int = Field(86400, ge=0)
    failed_keep: int = Field(500, ge=0)


class CacheConfig(_Section):
    latest_ttl: int = Field(3600, ge=1)
    aggregated_ttl: int = Field(60, ge=1)


DEFAULT_SSH_CONFIG = Path("~/.ssh/config")


class SSHConfig(_Section):
    # OpenSSH client config files applied to every server (null: none); a missing file is none.
    config: Path | list[Path] | None = DEFAULT_SSH_CONFIG
    username: str | None = None  # None: the ssh config's User, else the local user
    key_file: Path | None = None
    known_hosts: Path = Path("~/.ssh/known_hosts")
    connect_timeout: float = Field(10, gt=0)
    command_timeout: float = Field(20, gt=0)
    keepalive_interval: float = Field(30, gt=0)
    max_concurrent_connects: int = Field(8, ge=1)
    # Seconds: a server collected at least this often keeps its connection (and probe shell) open
    # between collections; one collected less often reconnects each time (0: none is kept).
    keep_open_max_interval: int = Field(300, ge=0)
    max_open_connections: int = Field(4096, ge=1)  # kept per worker, at most (and within its open-file limit)

    @field_validator("known_hosts", "key_file")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return None if value is None else expand_user(value)

    @field_validator("config")
    @classmethod
    def _expand_config(cls, value: Path | list[Path] | None) -> Path | list[Path] | None:
        if isinstance(value, list):
            return [expand_user(path) for path in value]
        return None if value is None else expand_user(value)

    @property
    def config_files(self) -> tuple[Path, ...]:
        if self.config is None:
            return ()
        return tuple(self.config) if isinstance(self.config, list) else (self.config,)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        return None if value is None else check_username(value)


class Listen(NamedTuple):
    """Where the HTTP API listens: api.listen or --listen, "HOST:PORT" ("[::1]:9105" for IPv6)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str) -> Listen:
    """ "HOST:PORT" as a Listen, or a ValueError saying what is wrong."""
    host, colon, port = text.strip().rpartition(":")
    if not colon or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"must be HOST:PORT with a port of 1-65535, such as 127.0.0.1:9105 (got {text!r})")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 address is written in brackets, such as [::1]:9105 (got {text!r})")
    return Listen(check_host(host), int(port))


TOKEN_MIN_LENGTH = 16
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")  # what a Bearer header carries as one word


def check_token(value: str) -> str:
    if len(value) < TOKEN_MIN_LENGTH or not _TOKEN_RE.fullmatch(value):
        raise ValueError(
            f"must be at least {TOKEN_MIN_LENGTH} printable ASCII characters without spaces (such as the output of: openssl rand -hex 32)"
        )
    return value


class ApiConfig(_Section):
    """The HTTP API and /metrics, served by `fleettop` and `fleettop --headless` when listen is set."""

    listen: str | None = None  # "HOST:PORT"; null: no API
    token: str | None = None  # the bearer token of name "api"
    tokens: dict[str, str] = Field(default_factory=dict)  # more tokens, by name (the name is audited)
    metrics_public: bool = False  # /metrics without a token

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        return None if value is None else str(parse_listen(value))

    @field_validator("token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        return None if value is None else check_token(value)

    @field_validator("tokens")
    @classmethod
    def _tokens(cls, value: dict[str, str]) -> dict[str, str]:
        for name, token in value.items():
            try:
                check_name(name)
            except ValueError as exc:
                raise ValueError(f"token name {name!r} {exc}") from None
            try:
                check_token(token)
            except ValueError as exc:
                raise ValueError(f"token {name!r} {exc}") from None
        if len(set(value.values())) < len(value):
            raise ValueError("two names share one token: the audit log could not tell them apart")
        return value

    def named_tokens(self) -> dict[str, str]:
        """Every token by its name (api.token is named "api")."""
        return {**({"api": self.token} if self.token else {}), **self.tokens}


class RetentionConfig(_Section):
    """How long each tier of the history is kept, in days (purged hourly by a worker)."""

    raw_days: int = Field(14, ge=1)
    rollup_5m_days: int = Field(90, ge=1)
    rollup_1h_days: int = Field(730, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _days_was_raw_days(cls, data: Any) -> Any:
        """`retention: {days: N}` (before the rollups) meant the raw samples: still read so."""
        if isinstance(data, dict) and "days" in data:
            data = dict(data)
            if "raw_days" in data:
                raise ValueError("days is the old name of raw_days: set only raw_days")
            data["raw_days"] = data.pop("days")
        return data

    def keep_days(self) -> dict[str, int]:
        """Days kept by tier name (fleettop.rollup's raw, 5m, 1h)."""
        return {"raw": self.raw_days, "5m": self.rollup_5m_days, "1h": self.rollup_1h_days}


class DefaultsConfig(_Section):
    """What a server that sets no interval or threshold of its own takes, at every start."""

    interval: int = Field(900, ge=MIN_INTERVAL)
    # transport: local (this machine, localhost on a first run) costs no SSH: collected often.
    local_interval: int = Field(15, ge=MIN_INTERVAL)
    thresholds: Thresholds = Field(default_factory=Thresholds)

    def interval_for(self, transport: str) -> int:
        return self.local_interval if transport == "local" else self.interval


class AlertsConfig(_Section):
    """When a threshold or an unreachable host becomes an alert (fleettop.alerting)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)

    for_samples: int = Field(2, ge=1, le=100, alias="for")  # consecutive samples past a threshold before it fires
    recheck: int = Field(60, ge=1)  # seconds: a server with a pending alert is collected again this soon
    recovery_margin: float = Field(5, ge=0, le=100)  # points under the threshold at which an alert resolves
    down_after: int = Field(1, ge=1, le=100)  # failed collections in a row before a host is down
    repeat: int = Field(14400, ge=0)  # seconds between reminders of a firing, unacknowledged alert (0: none)
    # A mount whose disk forecast (fleettop.forecast) says full sooner than this is marked on
    # the dashboard: seconds, or a duration as "7d", "36h".
    disk_full_within: int = Field(7 * 86_400, ge=60)

    @field_validator("disk_full_within", "recheck", "repeat", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


class NotifyConfig(_Section):
    urls: list[str] = Field(default_factory=list)  # apprise URLs (they may hold tokens: never logged)
    group_wait: float = Field(30, ge=0)  # seconds to gather a round's alerts into one message per URL
    send_resolved: bool = True

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for index, url in enumerate(value):
            if "://" not in url:
                raise ValueError(
                    f"entry {index} is not a URL (apprise URLs look like mailtos://, slack://, json://host/path)"
                )
        return value


class GroupConfig(_Section):
    """Settings for the servers carrying a tag: between a server's own and `defaults:`."""

    interval: int | None = Field(None, ge=MIN_INTERVAL)
    thresholds: ThresholdOverrides = Field(default_factory=ThresholdOverrides)
    username: str | None = None
    jump: str | None = None
    enabled: bool | None = None  # false: the group's servers are not collected

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        return None if value is None else check_username(value)

    @field_validator("jump")
    @classmethod
    def _jump(cls, value: str | None) -> str | None:
        return check_jump(value)


def from_groups(
    groups: Mapping[str, GroupConfig], tags: Iterable[str], get: Callable[[GroupConfig], _T | None]
) -> _T | None:
    """A setting from the groups of a server's tags: the first tag (in the server's order) whose
    group sets it; None when none does."""
    for tag in tags:
        group = groups.get(tag)
        if group is not None and (value := get(group)) is not None:
            return value
    return None


class Settings(_Section):
    data_dir: Path = DEFAULT_DATA_DIR
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    ssh: SSHConfig = Field(default_factory=SSHConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    defaults: DefaultsConfig = Field(default_factory=DefaultsConfig)
    groups: dict[str, GroupConfig] = Field(default_factory=dict)  # by tag
    servers: list[ServerConfig] = Field(default_factory=list)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return expand_user(value)

    @field_validator("groups")
    @classmethod
    def _group_tags(cls, value: dict[str, GroupConfig]) -> dict[str, GroupConfig]:
        check_tags(list(value))
        return value

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite+aiosqlite:///{self.data_dir / 'fleettop.db'}"


# everything between a URL's :// and its last @ (a password may hold ':', '/' and '@')
_URL_CREDENTIALS_RE = re.compile(r"(?<=://)\S*@")
# the password of a schemeless user:password@host
_URL_PASSWORD_RE = re.compile(r"(?<=:)[^:@/\s]*(?=@)")


def redact_url(text: str) -> str:
    """`text` with the credentials of any URL in it shown as ***: for messages and digests."""
    return _URL_PASSWORD_RE.sub("***", _URL_CREDENTIALS_RE.sub("***@", text))


def servers_fingerprint(settings: Settings) -> str:
    """A digest of what the server list synced from this config depends on: its servers,
    the defaults they take, and the database they are synced into (its URL without the
    password, which never goes into the digest)."""
    document = {
        "database": redact_url(settings.database_url),
        "defaults": settings.defaults.model_dump(mode="json"),
        "groups": {tag: group.model_dump(mode="json") for tag, group in settings.groups.items()},
        "servers": [server.model_dump(mode="json") for server in settings.servers],
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
