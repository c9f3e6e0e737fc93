"""Settings: one pydantic model tree, loaded once from YAML plus environment overrides.

Every problem in a config file becomes one line naming the file, the line (where
YAML gives one), the key and what is wrong; callers print them and exit 2.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar
from urllib.parse import parse_qs, urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fleettop.domain import Thresholds
from fleettop.jumps import format_jump, parse_jump
from fleettop.rollup import parse_duration

_T = TypeVar("_T")

ENV_PREFIX = "FLEETTOP_"
DEFAULT_CONFIG_PATH = Path("~/.config/fleettop/config.yaml")
DEFAULT_DATA_DIR = Path("~/.local/share/fleettop")
MIN_INTERVAL = 10

# Used with fullmatch: `$` would also accept a trailing newline.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_USER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_HOST_LABEL_RE = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_ZONE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # an IPv6 zone: an interface name or index
# libyaml's loader (a C extension) parses ~10x faster than the pure-Python one; a
# PyYAML built without libyaml has only the latter.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigError(Exception):
    """A config that cannot be used; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


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


def _nowhere(loc: list[Any]) -> str:
    return ""


@dataclass(frozen=True)
class LoadedConfig:
    settings: Settings
    path: Path  # where the config was read from, or would be
    exists: bool
    # Where a key was set, as an error message starts: "file:line: ", "environment FLEETTOP_X: "
    # or "" (a default): for problems found after loading.
    where: Callable[[list[Any]], str] = _nowhere

    @property
    def missing_note(self) -> str | None:
        """What to tell a user who runs without a config file (None when there is one)."""
        return None if self.exists else missing_config_note(self.path)


def missing_config_note(path: Path) -> str:
    return f"no config file: defaults in use; create {path} to change them (`fleettop config example` prints every key)"


def example_text() -> str:
    """config.example.yaml, as installed with the package: every key, its default, a comment."""
    from importlib.resources import files

    return files("fleettop").joinpath("config.example.yaml").read_text(encoding="utf-8")


def config_path(explicit: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    raw = explicit or environ.get(ENV_PREFIX + "CONFIG") or DEFAULT_CONFIG_PATH
    try:
        return expand_user(Path(raw))
    except ValueError as exc:
        raise ConfigError([f"{raw}: {exc}"]) from None


def load(explicit: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read the config file (if any) and the environment overrides, or raise ConfigError."""
    environ = os.environ if environ is None else environ
    path = config_path(explicit, environ)
    data: Any = {}
    text: str | None = None
    exists = path.is_file()
    if path.exists() and not exists:
        raise ConfigError([f"{path}: is not a regular file"])
    named_by = "--config" if explicit else ENV_PREFIX + "CONFIG" if environ.get(ENV_PREFIX + "CONFIG") else None
    if not exists and named_by:
        # Only the default file may be missing: a mistyped path must not mean "monitor nothing".
        raise ConfigError([f"{path}: no such config file (named by {named_by})"])
    if exists:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{path}: cannot be read: {exc}"]) from None
        data = _parse(path, text)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError([f"{path}:1: the top level must be a mapping of keys, not {type(data).__name__}"])
    composed: list[yaml.Node | None] = []

    def root() -> yaml.Node | None:
        """The file's node tree, for line numbers: composed only when a problem needs one."""
        if not composed:
            composed.append(None if text is None else _compose(text))
        return composed[0]

    problems: list[str] = []
    file_secret = _holds_password(data)  # before the environment's overrides: what the file itself holds
    from_env = _apply_env(data, environ, problems)
    if problems:
        raise ConfigError(problems)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(path, root(), error, from_env) for error in exc.errors()]
    problems += _duplicate_names(path, root, data.get("servers"))
    if problems:
        raise ConfigError(problems)
    warning = readable_secrets_warning(path) if exists and file_secret else None
    if warning:
        print(f"fleettop: warning: {warning}", file=sys.stderr)
    return LoadedConfig(
        settings=settings,
        path=path,
        exists=exists,
        where=lambda loc: _where(path if _has_key(data, loc) else None, root(), loc, from_env),
    )


def _has_key(data: Any, loc: list[Any]) -> bool:
    for part in loc:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def make_data_dir(loaded: LoadedConfig) -> None:
    """Create data_dir (mode 0700) when it is missing; ConfigError, naming where it was set,
    when it cannot be a directory (a file, /proc/..., no permission)."""
    data_dir = loaded.settings.data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if data_dir.is_dir():
            return
        problem = "is not a directory"
    except FileExistsError:
        problem = "is not a directory"
    except OSError as exc:
        problem = f"cannot be created: {exc.strerror or exc}"
    raise ConfigError([f"{loaded.where(['data_dir'])}data_dir: {data_dir} {problem}"])


def _parse(path: Path, text: str) -> Any:
    """The YAML document, parsed once by the fast loader; or ConfigError. A document libyaml
    refuses goes through the pure-Python parser, whose verdict (and wording) is the reference."""
    try:
        return yaml.load(text, Loader=_FAST_LOADER)  # noqa: S506 -- a safe loader
    except yaml.YAMLError:
        pass
    try:
        return yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}:{_yaml_line(exc)}: malformed YAML: {_yaml_problem(exc)}"]) from None


def _url_has_password(url: str | None) -> bool:
    if not url:
        return False
    try:
        parts = urlsplit(url)
        return bool(parts.password) or "password" in parse_qs(parts.query)
    except ValueError:
        return False


def _holds_password(data: Any) -> bool:
    """Whether a config document carries a password (in database.url or redis.url), an API
    token, or notify.urls (apprise URLs carry tokens and passwords)."""
    if not isinstance(data, dict):
        return False
    api, notify = data.get("api"), data.get("notify")
    if isinstance(api, dict) and (api.get("token") or api.get("tokens")):
        return True
    if isinstance(notify, dict) and notify.get("urls"):
        return True
    urls = []
    for section in ("database", "redis"):
        value = data.get(section)
        if isinstance(value, dict) and isinstance(value.get("url"), str):
            urls.append(value["url"])
    return any(_url_has_password(url) for url in urls)


def readable_secrets_warning(path: Path) -> str | None:
    """One line when users other than its owner may read the config file (which holds a
    password); None otherwise."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return f"{path} holds a password and other users can read it (mode {mode:04o}): chmod 600 {path}"


def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_FAST_LOADER)
    except yaml.YAMLError:  # libyaml refused what the pure-Python parser took (see _parse)
        return yaml.compose(text, Loader=yaml.SafeLoader)


def _duplicate_names(path: Path, root: Callable[[], yaml.Node | None], servers: Any) -> list[str]:
    if not isinstance(servers, list):
        return []
    first: dict[str, int] = {}
    problems = []
    for index, server in enumerate(servers):
        name = server.get("name") if isinstance(server, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            line = _line_of(root(), ["servers", index, "name"])
            where = f"{path}:{line}: " if line else f"{path}: "
            problems.append(
                f"{where}servers[{index}].name: duplicate server name {name!r} (also servers[{first[name]}])"
            )
        else:
            first[name] = index
    return problems


def validate_server(fields: dict[str, Any]) -> ServerConfig:
    """The config's rules for one server, for the CLI and the TUI form; raises ConfigError."""
    try:
        return ServerConfig.model_validate(fields)
    except ValidationError as exc:
        raise ConfigError([_describe(None, None, error) for error in exc.errors()]) from None


def _apply_env(data: dict[str, Any], environ: Mapping[str, str], problems: list[str]) -> dict[tuple[str, ...], str]:
    """FLEETTOP_<SECTION>__<KEY>=value (or FLEETTOP_<KEY> for top-level keys) overrides the file.

    Returns the overridden key paths with the variable that set each, for error messages.
    """
    overridden: dict[tuple[str, ...], str] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        if name.startswith(ENV_PREFIX + "TEST_") or name == ENV_PREFIX + "SECRET_KEY":
            continue  # not settings: test wiring and the secret key (read by fleettop.secrets)
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        if isinstance(value, dict) and not raw.lstrip().startswith("{"):
            value = raw  # "team1:" is a prefix, not a mapping; a mapping is written {key: value}
        target = data
        for part in parts[:-1]:
            node = target.setdefault(part, {})
            if not isinstance(node, dict):
                problems.append(f"environment {name}: {part} is not a section")
                break
            target = node
        else:
            target[parts[-1]] = value
            overridden[tuple(parts)] = name
    return overridden


# pydantic's type errors, in the words of the other messages ("must be ... (got ...)").
TYPE_MESSAGES = {
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_type": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
}


# Keys whose values may hold a password or a token (in a URL or whole): an error names the key,
# never the value.
SECRET_KEYS = (("notify", "urls"), ("api", "token"), ("api", "tokens"), ("database", "url"), ("redis", "url"))


def _holds_secret(loc: list[Any]) -> bool:
    return any(tuple(loc[: len(key)]) == key for key in SECRET_KEYS)


def _describe(
    path: Path | None,
    root: yaml.Node | None,
    error: Mapping[str, Any],
    from_env: dict[tuple[str, ...], str] | None = None,
) -> str:
    loc = [part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-"))]
    key = _dotted(loc) or "(top level)"
    where = _where(path, root, loc, from_env)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = None if _holds_secret(loc) else error.get("input")  # never echoed: it may be a password
    if kind == "extra_forbidden":
        message = "unknown key (check the spelling; `fleettop config example` prints every key)"
    elif kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
        message = _range_message(loc, kind, ctx, value)
    elif kind == "missing":
        message = "is required"
    elif kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
    elif kind in TYPE_MESSAGES:
        message = TYPE_MESSAGES[kind] + (f" (got {value!r})" if value is not None else "")
    else:
        message = error["msg"][0].lower() + error["msg"][1:]
        if value is not None and not isinstance(value, (dict, list)):
            message += f" (got {value!r})"
    return f"{where}{key}: {message}"


def _where(
    path: Path | None, root: yaml.Node | None, loc: list[Any], from_env: dict[tuple[str, ...], str] | None
) -> str:
    """How a message about the key at `loc` starts: "file:line: ", "environment FLEETTOP_X: " or ""."""
    variable = next((name for parts, name in (from_env or {}).items() if tuple(loc[: len(parts)]) == parts), None)
    if variable:
        return f"environment {variable}: "
    line = _line_of(root, loc)
    return f"{path}:{line}: " if path and line else f"{path}: " if path else ""


def _range_message(loc: list[Any], kind: str, ctx: dict[str, Any], value: Any) -> str:
    field = loc[-1] if loc else ""
    if field == "port":
        return f"must be between 1 and 65535 (got {value!r})"
    if field == "interval":
        return f"must be at least {MIN_INTERVAL} seconds (got {value!r})"
    if field in {"cpu", "ram", "disk"}:
        return f"threshold must be between 0 and 100 (got {value!r})"
    bound = next(iter(ctx.values()), "?")
    words = {
        "greater_than_equal": "at least",
        "less_than_equal": "at most",
        "greater_than": "more than",
        "less_than": "less than",
    }
    return f"must be {words[kind]} {bound} (got {value!r})"


_PLAIN_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def _dotted(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = str(part) if _PLAIN_KEY_RE.match(str(part)) else repr(part)
            out += f".{key}" if out else key
    return out


def _line_of(root: yaml.Node | None, loc: list[Any]) -> int | None:
    """The 1-based line of the deepest YAML node that the error location reaches."""
    node = root
    best: int | None = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = None
            for key_node, value_node in node.value:
                if key_node.value == part:
                    found = (key_node, value_node)
                    break
            if found is None:
                break
            best = found[0].start_mark.line + 1
            node = found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            best = node.start_mark.line + 1
        else:
            break
    if best is None and root is not None:
        best = root.start_mark.line + 1
    return best


def _yaml_line(exc: yaml.YAMLError) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark else 1


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    return f"{context}, {problem}" if context else problem
