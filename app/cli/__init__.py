"""The `fleettop` command line: argument parsing and dispatch.

The CLI paths (collect, queue, servers, export, audit, trust, db) never import Textual:
the TUI is imported only when the dashboard starts.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import sys
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

from fleettop import __version__, config
from fleettop.alerting import RULES
from fleettop.errors import FleettopError, UsageError
from fleettop.text import clean

# A coroutine, not any awaitable: asyncio.run takes only those.
Handler = Callable[[argparse.Namespace, config.LoadedConfig], Coroutine[Any, Any, int]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleettop",
        description="A terminal dashboard for a fleet of Linux servers, collected over SSH.",
        epilog=_config_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,  # a path wrapped at a hyphen cannot be copied
    )
    parser.add_argument("--version", action="version", version=f"fleettop {__version__}")
    parser.add_argument(
        "--config", metavar="PATH", help="config file (default: $FLEETTOP_CONFIG or ~/.config/fleettop/config.yaml)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--headless", action="store_true", help="run the worker and scheduler without a screen, logging to stdout"
    )
    mode.add_argument("--no-worker", action="store_true", help="dashboard only, attached to workers running elsewhere")
    parser.add_argument(
        "--demo",
        type=_demo_hosts,
        metavar="N",
        help=f"monitor N simulated hosts, at most {MAX_DEMO_HOSTS} (a first look; nothing is stored in your database)",
    )
    parser.add_argument(
        "--listen",
        type=_listen,
        metavar="HOST:PORT",
        help="serve the HTTP API and Prometheus /metrics there, beside the dashboard or --headless (as api.listen)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    collect = commands.add_parser("collect", help="collect metrics now")
    collect.add_argument("names", nargs="*", metavar="NAME", help="servers to collect")
    collect.add_argument("--all", action="store_true", help="every enabled server")
    collect.add_argument("--tag", metavar="TAG", help="every enabled server carrying this tag")
    collect.add_argument("--wait", action="store_true", help="wait for the results and print them")
    collect.add_argument("--json", action="store_true", help="print JSON, one object per server")

    queue = commands.add_parser("queue", help="queue statistics and control")
    queue.add_argument("action", choices=["stats", "pause", "resume", "clean"])
    queue.add_argument("--json", action="store_true")

    servers = commands.add_parser("servers", help="list, add, edit, remove or test servers")
    server_actions = servers.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = server_actions.add_parser("list", help="list servers")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--tag", metavar="TAG", help="only the servers carrying this tag")
    for name in ("add", "edit"):
        sub = server_actions.add_parser(name, help=f"{name} a server")
        sub.add_argument("name")
        required = name == "add"
        sub.add_argument("--host", required=required)
        sub.add_argument("--port", type=int)
        sub.add_argument("--user", dest="username")
        sub.add_argument("--transport", choices=["ssh", "local"])
        sub.add_argument("--auth", choices=["agent", "key", "password"])
        sub.add_argument("--key-file")
        sub.add_argument(
            "--interval",
            type=_or_default(int, "a whole number of seconds"),
            metavar="SECONDS|default",
            help="seconds between collections; 'default' takes defaults.interval (defaults.local_interval for a local server)",
        )
        for key, what in (("cpu", "CPU"), ("ram", "RAM"), ("disk", "disk")):
            sub.add_argument(
                f"--{key}",
                type=_or_default(float, "a percentage"),
                metavar="PERCENT|default",
                help=f"{what} threshold; 'default' takes defaults.thresholds.{key}",
            )
        sub.add_argument(
            "--password", action="store_true", help="prompt for a password or key passphrase (stored encrypted)"
        )
        tags = sub.add_mutually_exclusive_group()
        tags.add_argument(
            "--tag",
            dest="tags",
            action="append",
            metavar="TAG",
            help="a tag (repeat for several; on edit, the tags given replace the server's)",
        )
        if name == "edit":
            tags.add_argument("--no-tags", dest="tags", action="store_const", const=[], help="take every tag off")
        sub.add_argument(
            "--jump",
            metavar="SPEC|none|default",
            help="jump host: [user@]host[:port], a comma-separated chain, or a server's name; 'none': connect "
            "directly; 'default': its group's, else the ssh config's ProxyJump",
        )
        enabled = sub.add_mutually_exclusive_group()
        enabled.add_argument("--enable", dest="enabled", action="store_true", default=None)
        enabled.add_argument("--disable", dest="enabled", action="store_false", default=None)
        if name == "edit":
            sub.add_argument("--rename", metavar="NEW_NAME")
        sub.add_argument("--json", action="store_true")
    remove = server_actions.add_parser("remove", help="remove a server and its history")
    remove.add_argument("name")
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    test = server_actions.add_parser(
        "test",
        help="say what a server resolves to (address, user, key, jump hosts), connect and probe it, storing nothing",
    )
    test.add_argument("name")
    test.add_argument("--json", action="store_true")
    importing = server_actions.add_parser(
        "import", help="add or update servers listed in an ssh config or an Ansible inventory"
    )
    sources = importing.add_subparsers(dest="source", metavar="SOURCE", required=True)
    for source, path_help in (
        ("ssh-config", "an OpenSSH client config (default: the first of ssh.config, ~/.ssh/config)"),
        ("ansible", "an Ansible inventory, INI or YAML (a script is refused: nothing is run)"),
    ):
        sub = sources.add_parser(source, help=f"servers from {path_help.split(' (')[0]}")
        sub.add_argument("path", nargs="?" if source == "ssh-config" else None, metavar="PATH", help=path_help)
        sub.add_argument("--match", action="append", metavar="GLOB", help="only the names matching (repeatable)")
        sub.add_argument(
            "--tag", action="append", metavar="TAG", help="add this tag to every server imported (repeatable)"
        )
        sub.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")

    export = commands.add_parser("export", help="export samples as CSV or JSON")
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    export.add_argument("--server", metavar="NAME")
    export.add_argument("--tag", metavar="TAG", help="only the servers carrying this tag")
    export.add_argument("--since", metavar="24h|ISO")
    export.add_argument("--until", metavar="24h|ISO")
    export.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    export.add_argument(
        "--step",
        metavar="5m|1h|1d",
        help="export rollups instead of samples: min, avg and max of every metric per step (server, at, metric, n, min, avg, max)",
    )

    history = commands.add_parser(
        "history", help="one server's history: min, avg and max per step, from samples or rollups"
    )
    history.add_argument("name", metavar="NAME")
    history.add_argument(
        "--metric",
        action="append",
        metavar="M",
        help="cpu, ram, swap, disk, load1, net_rx, net_tx or disk:MOUNT; repeat or separate with commas (default: all but the mounts)",
    )
    history.add_argument("--since", metavar="30d|ISO", help="start of the range (default: 24h ago)")
    history.add_argument("--until", metavar="1h|ISO", help="end of the range (default: now)")
    history.add_argument("--step", metavar="5m|1h|1d", help="one point per step (default: at most 200 points)")
    history_format = history.add_mutually_exclusive_group()
    history_format.add_argument("--json", action="store_true")
    history_format.add_argument("--csv", action="store_true")

    trust = commands.add_parser("trust", help="show a server's host key and record it as trusted")
    trust.add_argument("name")
    trust.add_argument("--yes", action="store_true", help="trust a new key without asking (never a changed one)")
    trust.add_argument(
        "--replace", action="store_true", help="trust this key in place of a different one trusted before"
    )
    untrust = commands.add_parser("untrust", help="forget the host keys fleettop trusts for a server")
    untrust.add_argument("name")

    audit = commands.add_parser("audit", help="show the audit log: who changed or ran what, and when")
    audit.add_argument("--limit", type=_positive_int, default=50, metavar="N", help="the newest N entries (default 50)")
    audit.add_argument("--json", action="store_true")

    alerts = commands.add_parser("alerts", help="open alerts (pending and firing); `alerts ack ID` acknowledges one")
    alerts.add_argument("action", nargs="?", choices=["ack"], help="ack: acknowledge an alert (no more reminders)")
    alerts.add_argument("id", nargs="?", type=_positive_int, metavar="ID")
    alerts.add_argument("--all", action="store_true", help="also the alerts resolved in the last 7 days")
    alerts.add_argument("--json", action="store_true")

    silence = commands.add_parser("silence", help="hold back a server's notifications for a while (maintenance)")
    silence.add_argument("name", nargs="?", metavar="NAME")
    silence.add_argument("--rule", choices=RULES, help="only this rule (default: every rule)")
    silence.add_argument("--for", dest="duration", metavar="DURATION", help="how long: 30m, 2h, 7d")
    silence.add_argument("--comment", metavar="TEXT", help="why (shown in --list and the audit log)")
    silence_actions = silence.add_mutually_exclusive_group()
    silence_actions.add_argument("--list", action="store_true", help="the silences in force")
    silence_actions.add_argument("--expire", type=_positive_int, metavar="ID", help="end a silence now")
    silence.add_argument("--json", action="store_true")

    notify = commands.add_parser("notify", help="notifications: `notify test` sends a test message to every URL")
    notify.add_argument("action", choices=["test"])

    db = commands.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade", "purge", "rollup"])

    cache = commands.add_parser("cache", help="Redis cache maintenance")
    cache.add_argument("action", choices=["clear"])

    config_command = commands.add_parser("config", help="print a commented config file with every key and its default")
    config_command.add_argument("action", choices=["example"])
    return parser


def _config_epilog() -> str:
    """Where the config file is read from (without --config), and whether one is there."""
    try:
        path = config.config_path()
    except config.ConfigError as exc:
        return f"config file: {exc}"
    return f"config file: {path}" if path.is_file() else config.missing_config_note(path)


MAX_DEMO_HOSTS = 2000  # simulated hosts all run in this one process


MAX_ID = 2**63 - 1  # the databases' BIGINT: a larger number is no row's id


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    if value > MAX_ID:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_ID}")
    return value


def _listen(text: str) -> config.Listen:
    try:
        return config.parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _demo_hosts(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of hosts, got {text!r}") from None
    if not 1 <= value <= MAX_DEMO_HOSTS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_DEMO_HOSTS} hosts, got {value}")
    return value


def _or_default(convert: Callable[[str], int | float], what: str) -> Callable[[str], int | float | str]:
    """An argument type: a number, or the word 'default' (the server then follows `defaults:`)."""

    def parse(text: str) -> int | float | str:
        if text.strip().lower() == "default":
            return "default"
        try:
            return convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} or 'default', got {text!r}") from None

    return parse


# Each command's handler lives in a module of its own, imported lazily so that no
# CLI path pays for (or imports) what it does not use -- Textual above all.
_HANDLERS = {
    "servers": "fleettop.cli.servers:cmd_servers",
    "export": "fleettop.cli.export:cmd_export",
    "history": "fleettop.cli.history:cmd_history",
    "db": "fleettop.cli.db:cmd_db",
    "audit": "fleettop.cli.audit:cmd_audit",
    "alerts": "fleettop.cli.alerts:cmd_alerts",
    "silence": "fleettop.cli.alerts:cmd_silence",
    "notify": "fleettop.cli.alerts:cmd_notify",
    "trust": "fleettop.cli.trust:cmd_trust",
    "untrust": "fleettop.cli.trust:cmd_untrust",
    "collect": "fleettop.cli.collect:cmd_collect",
    "queue": "fleettop.cli.queue:cmd_queue",
    "cache": "fleettop.cli.queue:cmd_cache",
    "headless": "fleettop.cli.headless:cmd_headless",
    "dashboard": "fleettop.tui.app:cmd_dashboard",
}


def _handler(args: argparse.Namespace) -> Handler:
    command = args.command or ("headless" if args.headless else "dashboard")
    module_name, _, function = _HANDLERS[command].partition(":")
    handler: Handler = getattr(importlib.import_module(module_name), function)
    return handler


def _settle_imports() -> None:
    """The command's modules are loaded and stay for the life of the process: frozen out of
    the cyclic collector's sight, they cost nothing more, at exit least of all (walking them
    there took a short command like `collect --all --wait` about 50 ms). Collection is on
    again, if fleettop.__main__ turned it off for the imports."""
    gc.freeze()
    gc.enable()


def quiet_library_warnings() -> None:
    """Before asyncssh is imported: cryptography 51 deprecates DSA, and asyncssh 2.24 names
    its DSA classes at import time, so every command that loads asyncssh would print ten
    lines of CryptographyDeprecationWarning (a UserWarning, which -W ignore::DeprecationWarning
    does not hide). Only those, and only from asyncssh: any other warning still shows."""
    warnings.filterwarnings("ignore", message="DSA is deprecated", category=UserWarning, module=r"asyncssh(\.|$)")


def main(argv: list[str] | None = None) -> int:
    quiet_library_warnings()
    args = build_parser().parse_args(argv)
    if args.command == "config":  # needs no config: the way to write a first one, or mend a broken one
        sys.stdout.write(config.example_text())
        return 0
    try:
        loaded = config.load(args.config)
        if not args.demo:  # a demo runs in a throwaway data_dir
            config.make_data_dir(loaded)
    except config.ConfigError as exc:
        for line in exc.problems:
            print(f"fleettop: {line}", file=sys.stderr)
        return 2
    try:
        if args.listen is not None and args.command is not None:
            raise UsageError(
                f"--listen serves the API from `fleettop` or `fleettop --headless`, not from `{args.command}`"
            )
        handler = _handler(args)
        _settle_imports()
        return asyncio.run(handler(args, loaded))
    except config.ConfigError as exc:
        for line in exc.problems:
            print(f"fleettop: {line}", file=sys.stderr)
        return 2
    except FleettopError as exc:
        # Messages may carry names and hosts read back from the database: cleaned like the rest.
        print(f"fleettop: {clean(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence: one line, never a traceback
        message = config.redact_url(f"{type(exc).__name__}: {exc}".splitlines()[0])
        print(f"fleettop: unexpected error: {message}", file=sys.stderr)
        return 1
