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

# One module per command group. Add yours here.
COMMAND_MODULES = [
    "podnet.cli.dns",
    "podnet.cli.objects",
    "podnet.cli.delete",
    "podnet.cli.lab",
    "podnet.cli.ipam",
    "podnet.cli.policy",
    "podnet.cli.policy_staged",
    "podnet.cli.trace",
    "podnet.cli.flows",
    "podnet.cli.nodes",
    "podnet.cli.demo",
    "podnet.cli.controllers",
    "podnet.cli.store",
    "podnet.cli.apiserver",
    "podnet.cli.ui.command",
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="podnet", description="The Kubernetes network model on a real Linux data plane.")
    p.add_argument("--datastore", help="sqlite:///path.db or etcd://host:port[/prefix] (env PODNET_DATASTORE)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
