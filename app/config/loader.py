"""Reading a config: the file (YAML, parsed once), the FLEETTOP_* environment overlay, one
server's fields typed at the CLI or in the TUI form, and the data directory a config names.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from pydantic import ValidationError

from fleettop.config.problems import ConfigError, ConfigProblem, describe, line_of, malformed_yaml, where_of
from fleettop.config.schema import ServerConfig, Settings, expand_user

ENV_PREFIX = "FLEETTOP_"
DEFAULT_CONFIG_PATH = Path("~/.config/fleettop/config.yaml")
# libyaml's loader (a C extension) parses ~10x faster than the pure-Python one; a
# PyYAML built without libyaml has only the latter.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
        raise ConfigError([ConfigProblem(None, str(exc), f"{raw}: ")]) from None


def load(explicit: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read the config file (if any) and the environment overrides, or raise ConfigError."""
    environ = os.environ if environ is None else environ
    path = config_path(explicit, environ)
    data: Any = {}
    text: str | None = None
    exists = path.is_file()
    if path.exists() and not exists:
        raise ConfigError([ConfigProblem(None, "is not a regular file", f"{path}: ")])
    named_by = "--config" if explicit else ENV_PREFIX + "CONFIG" if environ.get(ENV_PREFIX + "CONFIG") else None
    if not exists and named_by:
        # Only the default file may be missing: a mistyped path must not mean "monitor nothing".
        raise ConfigError([ConfigProblem(None, f"no such config file (named by {named_by})", f"{path}: ")])
    if exists:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([ConfigProblem(None, f"cannot be read: {exc}", f"{path}: ")]) from None
        data = _parse(path, text)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            shape = f"the top level must be a mapping of keys, not {type(data).__name__}"
            raise ConfigError([ConfigProblem(None, shape, f"{path}:1: ")])
    composed: list[yaml.Node | None] = []

    def root() -> yaml.Node | None:
        """The file's node tree, for line numbers: composed only when a problem needs one."""
        if not composed:
            composed.append(None if text is None else _compose(text))
        return composed[0]

    problems: list[ConfigProblem] = []
    file_secret = _holds_password(data)  # before the environment's overrides: what the file itself holds
    from_env = _apply_env(data, environ, problems)
    if problems:
        raise ConfigError(problems)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = [describe(path, root(), error, from_env) for error in exc.errors()]
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
        where=lambda loc: where_of(path if _has_key(data, loc) else None, root(), loc, from_env),
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
    raise ConfigError([ConfigProblem(("data_dir",), f"{data_dir} {problem}", loaded.where(["data_dir"]))])


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
        raise ConfigError([malformed_yaml(path, exc)]) from None


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


def _duplicate_names(path: Path, root: Callable[[], yaml.Node | None], servers: Any) -> list[ConfigProblem]:
    if not isinstance(servers, list):
        return []
    first: dict[str, int] = {}
    problems = []
    for index, server in enumerate(servers):
        name = server.get("name") if isinstance(server, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            line = line_of(root(), ["servers", index, "name"])
            where = f"{path}:{line}: " if line else f"{path}: "
            message = f"duplicate server name {name!r} (also servers[{first[name]}])"
            problems.append(ConfigProblem(("servers", index, "name"), message, where))
        else:
            first[name] = index
    return problems


def validate_server(fields: dict[str, Any]) -> ServerConfig:
    """The config's rules for one server, for the CLI and the TUI form; raises ConfigError."""
    try:
        return ServerConfig.model_validate(fields)
    except ValidationError as exc:
        raise ConfigError([describe(None, None, error) for error in exc.errors()]) from None


def _apply_env(
    data: dict[str, Any], environ: Mapping[str, str], problems: list[ConfigProblem]
) -> dict[tuple[str, ...], str]:
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
                problems.append(ConfigProblem(None, f"{part} is not a section", f"environment {name}: "))
                break
            target = node
        else:
            target[parts[-1]] = value
            overridden[tuple(parts)] = name
    return overridden
