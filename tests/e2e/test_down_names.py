"""`podnet down --force` takes a crashed lab's leftovers and nothing else (root).

A crashed lab is simulated by its namespaces alone (a node's and a pod's, named as the
lab names them); beside them live namespaces that are not the lab's: one that merely
shares its prefix, and a test's (`pnt-`), each with a process inside. Everything is
created here with a random id and removed at the end, also on failure.
"""
from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest

from lablib import Lab, netns_list
from netnames import unique_netns

pytestmark = pytest.mark.root


def _add_netns(name: str, made: list[str]) -> None:
    subprocess.run(["ip", "netns", "add", name], check=True)
    made.append(name)


def test_down_force_takes_the_labs_leftovers_and_leaves_others(tmp_path: Path) -> None:
    lab = Lab("x" + secrets.token_hex(3), tmp_path)
    leftovers = [f"pn-{lab.name}-n1", f"pn-{lab.name}-p0f6c2a1e77"]
    others = [f"pn-{lab.name}-bench", unique_netns("down")]
    made: list[str] = []
    sleepers: list[subprocess.Popen[bytes]] = []
    etc_other = Path("/etc/netns") / others[0]
    try:
        for ns in leftovers + others:
            _add_netns(ns, made)
        for ns in (leftovers[0], *others):
            sleepers.append(subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "60"]))
        etc_other.mkdir(parents=True)
        (etc_other / "resolv.conf").write_text("nameserver 127.0.0.1\n")

        lab.podnet("down", "--name", lab.name, "--force")

        present = netns_list()
        assert not [ns for ns in leftovers if ns in present]
        assert all(ns in present for ns in others)
        assert sleepers[0].wait(timeout=10) is not None  # the lab's process went with it
        assert all(p.poll() is None for p in sleepers[1:])  # the others' still run
        assert (etc_other / "resolv.conf").exists()
    finally:
        for p in sleepers:
            p.kill()
            p.wait()
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["rm", "-rf", str(etc_other)])


@pytest.mark.parametrize("reserved", ["cni", "svc", "dns"])
def test_up_refuses_a_name_that_is_not_a_labs(tmp_path: Path, reserved: str) -> None:
    # --nodes 0 as a fuse: were the name ever accepted again, no lab gets built
    cp = Lab(reserved, tmp_path).podnet("up", "--name", reserved, "--nodes", "0", check=False)
    assert cp.returncode != 0 and "reserved" in cp.stderr, (cp.stdout, cp.stderr)
