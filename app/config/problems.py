"""What is wrong with a config: each problem a ConfigProblem record (the key's path, what is
wrong, where the key was set), which reads as one line: "file:line: key: what is wrong".

ConfigError carries them: the CLI prints the lines and exits 2, the TUI form puts each
record under the field of its key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleettop.config.schema import MIN_INTERVAL

# A key's path from the top of the document, as pydantic gives it: ("servers", 0, "port").
Location = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config. str() is the line the user reads:
    "<where><key>: <message>", or "<where><message>" for a problem not about one key."""

    # The key it is about; () the document's top level; None: not one key's value (the file
    # cannot be read or parsed, an environment variable cannot be applied): the message says all.
    location: Location | None
    message: str  # what is wrong, as the user reads it after the key
    # How the line starts: "file:line: ", "file: ", "environment FLEETTOP_X: ", or "" (a form's
    # field, a default).
    where: str = ""

    @property
    def key(self) -> str:
        """The location as the messages write it: servers[0].port, "(top level)"; "" for none."""
        if self.location is None:
            return ""
        return dotted(self.location) or "(top level)"

    def __str__(self) -> str:
        if self.location is None:
            return f"{self.where}{self.message}"
        return f"{self.where}{self.key}: {self.message}"


class ConfigError(Exception):
    """A config that cannot be used. `records`: its problems as found; `problems`: the same, one
    line each, as the user reads them (a plain line given is a problem not about one key)."""

    def __init__(self, problems: Sequence[ConfigProblem | str]):
        self.records = [p if isinstance(p, ConfigProblem) else ConfigProblem(None, p) for p in problems]
        self.problems = [str(problem) for problem in self.records]
        super().__init__("\n".join(self.problems))


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


def _holds_secret(loc: Sequence[Any]) -> bool:
    return any(tuple(loc[: len(key)]) == key for key in SECRET_KEYS)


def describe(
    path: Path | None,
    root: yaml.Node | None,
    error: Mapping[str, Any],
    from_env: dict[tuple[str, ...], str] | None = None,
) -> ConfigProblem:
    """A pydantic validation error as a problem: the key, where it was set, what is wrong in
    the words of the other messages (never the value of a key that may hold a secret)."""
    loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-")))
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
    return ConfigProblem(loc, message, where_of(path, root, loc, from_env))


def where_of(
    path: Path | None, root: yaml.Node | None, loc: Sequence[Any], from_env: dict[tuple[str, ...], str] | None
) -> str:
    """How a message about the key at `loc` starts: "file:line: ", "environment FLEETTOP_X: " or ""."""
    variable = next((name for parts, name in (from_env or {}).items() if tuple(loc[: len(parts)]) == parts), None)
    if variable:
        return f"environment {variable}: "
    line = line_of(root, loc)
    return f"{path}:{line}: " if path and line else f"{path}: " if path else ""


def _range_message(loc: Sequence[Any], kind: str, ctx: dict[str, Any], value: Any) -> str:
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


def dotted(loc: Sequence[Any]) -> str:
    """A key's path as the messages write it: servers[0].thresholds.cpu."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = str(part) if _PLAIN_KEY_RE.match(str(part)) else repr(part)
            out += f".{key}" if out else key
    return out


def line_of(root: yaml.Node | None, loc: Sequence[Any]) -> int | None:
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


def malformed_yaml(path: Path, exc: yaml.YAMLError) -> ConfigProblem:
    """A document YAML cannot parse, at the line where the parser gave up."""
    return ConfigProblem(None, f"malformed YAML: {_yaml_problem(exc)}", f"{path}:{_yaml_line(exc)}: ")


def _yaml_line(exc: yaml.YAMLError) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark else 1


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    return f"{context}, {problem}" if context else problem
