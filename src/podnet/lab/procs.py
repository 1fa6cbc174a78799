"""Start and stop the lab's processes, known only by the PIDs we recorded.

Each process starts in a new session (its PID is its process group), its PID and kernel
start time go to the lab state before anything else happens, and stopping signals that
group only when the start time still matches (a recycled PID is somebody else's).
Processes that sit inside one of the lab's namespaces are found with `ip netns pids`.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

from podnet.dataplane.net.netns import netns_argv, run
from podnet.lab.state import LabState


def podnet_argv(*args: str) -> list[str]:
    """The podnet CLI as a command line, from the same interpreter (venv) as ours."""
    return [sys.executable, "-m", "podnet.cli.main", *args]


def start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # field 22 (starttime), counted after the ")" that ends the command name
    return stat.rsplit(")", 1)[1].split()[19]


def nsenter_argv(netns: str, argv: Sequence[str]) -> list[str]:
    """Enter only the network namespace. `ip netns exec` also gives the process a mount
    namespace of its own, where a netns it creates with `ip netns add` stays invisible to
    every other process (the bind mount does not propagate back): the kubelet needs this."""
    return ["nsenter", f"--net=/var/run/netns/{netns}", "--", *argv]


def spawn(state: LabState, what: str, argv: Sequence[str], netns: str | None = None,
          env: dict[str, str] | None = None, cwd: str | None = None,
          net_only: bool = False, pass_fds: Sequence[int] = ()) -> int:
    """Start argv (inside netns when given); record `what`'s PID; return the PID.
    `pass_fds` stay open in the child (a socket made here for it to serve)."""
    log = open(state.log(what), "ab")
    full = nsenter_argv(netns, argv) if netns and net_only else netns_argv(netns, argv)
    try:
        p = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
                             env={**os.environ, **(env or {})}, cwd=cwd, pass_fds=tuple(pass_fds))
    finally:
        log.close()
    state.record_pid(what, p.pid)
    st = start_time(p.pid)
    if st:
        state.path("pids", f"{what}.start").write_text(st + "\n")
    return p.pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    st = start_time(pid)
    # a zombie of ours still answers kill(0): read its state
    try:
        return st is not None and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def recorded_pid_matches(state: LabState, what: str, pid: int) -> bool:
    try:
        want = state.path("pids", f"{what}.start").read_text().strip()
    except OSError:
        return alive(pid)  # no start time kept: trust the PID file
    return start_time(pid) == want


def netns_pids(netns: str) -> list[int]:
    return pids_in_netns([netns])


def pids_in_netns(namespaces: Iterable[str]) -> list[int]:
    """The processes inside any of the named namespaces, found as `ip netns pids` finds
    them (a process's /proc/<pid>/ns/net is the same nsfs inode as the name's bind mount),
    in one pass over /proc for all of them: `ip netns pids` once per namespace was most of
    `podnet down` with 1,000 pods (issue 22)."""
    want: set[tuple[int, int]] = set()
    for ns in namespaces:
        try:
            st = os.stat(os.path.join("/var/run/netns", ns))
        except OSError:
            continue
        want.add((st.st_dev, st.st_ino))
    if not want:
        return []
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue  # gone, or not ours to see
        if (st.st_dev, st.st_ino) in want:
            out.append(int(entry))
    return sorted(out)


def _signal(pids: Iterable[int], sig: int, group: bool) -> None:
    for pid in pids:
        try:
            if group:
                try:
                    os.killpg(pid, sig)
                except ProcessLookupError:
                    os.kill(pid, sig)
            else:
                os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _reap(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def terminate(pids: Sequence[int]) -> None:
    """SIGTERM to each process group, and nothing more (the caller waits as it likes)."""
    _signal(pids, signal.SIGTERM, True)


def stop(pids: Sequence[int], group: bool = True, timeout: float = 3.0) -> list[int]:
    """SIGTERM (the group when `group`), then SIGKILL after `timeout`. Returns the PIDs
    that had to be killed."""
    if not pids:
        return []
    _signal(pids, signal.SIGTERM, group)
    deadline = time.monotonic() + timeout
    left = list(pids)
    while left and time.monotonic() < deadline:
        _reap(left)
        left = [p for p in left if alive(p)]
        if left:
            time.sleep(0.02)
    if left:
        _signal(left, signal.SIGKILL, group)
        time.sleep(0.05)
    _reap(pids)  # our own children would stay zombies until the next Popen otherwise
    return left


def stop_recorded(state: LabState, order: Sequence[str] = ()) -> list[str]:
    """Stop every recorded process: the ones named in `order` first, in that order, then
    the rest together. Returns the names stopped."""
    pids = state.pids()
    names = [n for n in order if n in pids] + sorted(n for n in pids if n not in order)
    stopped = []
    batch: list[int] = []
    for n in names:
        pid = pids[n]
        if recorded_pid_matches(state, n, pid) and alive(pid):
            if n in order:
                stop([pid])
            else:
                batch.append(pid)
            stopped.append(n)
    stop(batch)
    _forget(state, names)
    return stopped


def _forget(state: LabState, names: Sequence[str]) -> None:
    for n in names:
        state.forget_pid(n)
        try:
            state.path("pids", f"{n}.start").unlink()
        except FileNotFoundError:
            pass


def stop_named(state: LabState, names: Sequence[str]) -> list[str]:
    """Stop the recorded processes `names` (one node's, when it leaves the lab) together,
    and forget them. Returns the names that were running."""
    pids = state.pids()
    running = [n for n in names if n in pids and recorded_pid_matches(state, n, pids[n]) and alive(pids[n])]
    stop([pids[n] for n in running])
    _forget(state, names)
    return running
