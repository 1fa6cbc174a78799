"""Tear a lab down: processes, namespaces, /etc/netns files, state directory.

Order matters: the kubelet stops first (it would create pods while we delete them),
then every other recorded process, then anything still living in one of the lab's
namespaces (procs.pids_in_netns, as `ip netns pids` finds them), then the namespaces (which takes their links and routes
with them), then `/etc/netns/<ns>` and the state directory. Namespaces are those the
lab recorded plus every existing one named as this lab names its own (`pn-<lab>-<role>`,
topology.is_lab_netns), so a crash half-way through `up` or a pod whose netns was never
recorded still goes, and a namespace merely sharing the prefix stays.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from podnet.dataplane.net.links import IpBatch
from podnet.dataplane.net.netns import run
from podnet.lab import procs
from podnet.lab.state import LabState
from podnet.lab.topology import is_lab_netns, validate_name

ETC_NETNS = Path("/etc/netns")
STOP_ORDER = ("kubelet",)


@dataclass
class DownReport:
    name: str
    processes: list[str] = field(default_factory=list)
    stray_pids: list[int] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def lab_namespaces(name: str) -> list[str]:
    """Every existing netns named as the lab names its own."""
    cp = run(None, ["ip", "netns", "list"], check=False)
    return sorted({line.split()[0] for line in cp.stdout.splitlines()
                   if line.split() and is_lab_netns(name, line.split()[0])})


def teardown(name: str, state: LabState | None = None) -> DownReport:
    validate_name(name)
    state = state or LabState.for_lab(name)
    report = DownReport(name)
    report.processes = procs.stop_recorded(state, STOP_ORDER)
    meta = state.read_meta()
    namespaces = sorted(set(lab_namespaces(name)) |
                        {n for n in meta.get("netns", []) if isinstance(n, str) and is_lab_netns(name, n)})
    stray = procs.pids_in_netns(namespaces)
    if stray:
        # processes started inside a lab namespace by someone (podnet exec, a test):
        # they are the lab's too, and would keep its namespaces alive
        procs.stop(stray, group=False, timeout=2.0)
        report.stray_pids = stray
    existing = set(lab_namespaces(name))
    b = IpBatch(None)
    for ns in namespaces:
        if ns in existing:
            b.add(f"netns del {ns}")
    b.run(force=True)
    report.namespaces = [ns for ns in namespaces if ns in existing]
    if ETC_NETNS.is_dir():
        for d in sorted(ETC_NETNS.iterdir()):
            if is_lab_netns(name, d.name):
                shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)
                report.files.append(str(d))
        try:
            ETC_NETNS.rmdir()  # only when empty: other labs' files stay, and so does the dir
        except OSError:
            pass
    if state.dir.exists():
        state.remove()
        report.files.append(str(state.dir))
    return report
