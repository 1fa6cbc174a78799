"""`podnet exec` argument order, as kubectl takes it. No root."""
from __future__ import annotations

import argparse

import pytest

from podnet.cli.errors import UserError
from podnet.cli.lab import split_exec_args


def parse(*rest: str) -> tuple[argparse.Namespace, list[str]]:
    ns = argparse.Namespace(rest=list(rest), namespace="default", container="")
    return ns, split_exec_args(ns)


@pytest.mark.parametrize("rest,pod,nsp,cont,cmd", [
    (["p", "--", "ip", "-o", "a"], "p", "default", "", ["ip", "-o", "a"]),
    (["p", "-c", "side", "--", "curl", "-s", "x"], "p", "default", "side", ["curl", "-s", "x"]),
    (["p", "-n", "kube-system", "--", "sh", "-c", "exit 3"], "p", "kube-system", "", ["sh", "-c", "exit 3"]),
    (["p", "true"], "p", "default", "", ["true"]),
    (["p", "--"], "p", "default", "", []),
])
def test_pod_options_and_command(rest, pod, nsp, cont, cmd):
    ns, got = parse(*rest)
    assert (ns.pod, ns.namespace, ns.container, got) == (pod, nsp, cont, cmd)


def test_missing_pod_or_unknown_option_is_a_user_error():
    with pytest.raises(UserError, match="give a pod"):
        parse("--", "true")
    with pytest.raises(UserError, match="unknown option"):
        parse("-x", "p", "--", "true")
