"""`podnet`: the command line. Thin: parse, call, print.

Each command group lives in its own module with `register(subparsers)`; a subcommand
sets `func(args) -> int`. Exit codes: 0 ok, 1 user error (one line, no traceback),
2 usage error (argparse).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from podnet.cli.errors import UserError

# Each command and the module that registers it (`register(subparsers)`). Add yours here;
# tests/unit/cli/test_main_dispatch.py checks the table against every module's register().
COMMANDS = {
    "dns": "podnet.cli.dns",
    "apply": "podnet.cli.objects", "get": "podnet.cli.objects", "describe": "podnet.cli.objects",
    "delete": "podnet.cli.delete",
    **dict.fromkeys(("up", "down", "labs", "use", "exec", "serve", "agent", "kubelet"), "podnet.cli.lab"),
    "ipam": "podnet.cli.ipam",
    "analyze": "podnet.cli.policy", "probe": "podnet.cli.policy",
    "promote": "podnet.cli.policy_staged",
    "trace": "podnet.cli.trace",
    "flows": "podnet.cli.flows",
    "node": "podnet.cli.nodes",
    "demo": "podnet.cli.demo",
    "controllers": "podnet.cli.controllers",
    "store": "podnet.cli.store",
    "apiserver": "podnet.cli.apiserver", "kubeconfig": "podnet.cli.apiserver",
    "ui": "podnet.cli.ui.command",
}
COMMAND_MODULES = list(dict.fromkeys(COMMANDS.values()))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `command` (a known one), only its module is imported and registered:
    every module imports what its commands run, and importing all of them cost each call of
    `podnet` (every lab process, every CLI call) ~0.75 s of CPU instead of ~0.3."""
    p = argparse.ArgumentParser(prog="podnet", description="The Kubernetes network model on a real Linux data plane.")
    p.add_argument("--datastore", help="sqlite:///path.db or etcd://host:port[/prefix] (env PODNET_DATASTORE)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for mod in [COMMANDS[command]] if command in COMMANDS else COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    return p


def command_of(argv: list[str]) -> str | None:
    """The command word of `argv`: the first word that is not the global option or its value
    (None before it asks for the top-level help, which lists every command)."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            return None
        if a == "--datastore":
            i += 2
        elif a.startswith("-"):
            i += 1
        else:
            return a
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(command_of(argv))
    args, extra = parser.parse_known_args(argv)
    if extra:
        # kubectl takes names after flags too (`delete pod --force web`); argparse stops
        # filling a positional list at the first option, so the rest comes back here
        if isinstance(getattr(args, "names", None), list) and not any(x.startswith("-") for x in extra):
            args.names.extend(extra)
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
