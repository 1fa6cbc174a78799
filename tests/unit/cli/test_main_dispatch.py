"""`podnet COMMAND` imports only the module of COMMAND (cli/main.py): the table of commands
must name exactly what the modules register, and a call must not import the others."""
from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from podnet.cli.main import COMMAND_MODULES, COMMANDS, build_parser, command_of


def test_the_table_names_what_every_module_registers():
    registered = {}
    for mod in COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(mod).register(sub)
        registered.update(dict.fromkeys(sub.choices, mod))
    assert registered == COMMANDS


@pytest.mark.parametrize("argv, want", [
    (["get", "pods"], "get"),
    (["--datastore", "sqlite:///x.db", "dns", "--ttl", "5"], "dns"),
    (["--datastore=etcd://h:1", "apply", "-f", "x"], "apply"),
    (["-h"], None),
    (["--help", "get"], None),
    (["get", "--help"], "get"),
    ([], None),
    (["nonsense"], "nonsense"),
])
def test_the_command_word(argv, want):
    assert command_of(argv) == want


def test_one_command_parses_as_with_every_module():
    argv = ["--datastore", "sqlite:///x.db", "dns", "--listen", "127.0.0.1:5300", "--ttl", "7"]
    assert vars(build_parser("dns").parse_args(argv)).keys() == vars(build_parser().parse_args(argv)).keys()
    assert build_parser("dns").parse_args(argv).ttl == 7


def test_a_call_imports_only_its_commands_module():
    code = ("import sys; from podnet.cli.main import main\n"
            "try:\n    main(['get', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('podnet.cli.') and m.count('.') == 2))")
    cp = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(eval(cp.stdout.strip().splitlines()[-1]))  # noqa: S307 - our own printed list
    assert "podnet.cli.objects" in loaded
    others = {m for m in COMMAND_MODULES if m != "podnet.cli.objects" and m.count(".") == 2}
    assert not loaded & others, loaded & others


def test_an_unknown_command_lists_them_all(capsys):
    with pytest.raises(SystemExit):
        build_parser("nonsense").parse_args(["nonsense"])
    err = capsys.readouterr().err
    assert "invalid choice: 'nonsense'" in err and "trace" in err and "apiserver" in err
