"""lab/procs.py: processes known by recorded PID + start time, stopped with their children.
Runs ordinary `sleep` processes; no namespace, no root."""
from __future__ import annotations

import os
import subprocess
import time

from podnet.lab import procs
from podnet.lab.state import LabState


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not procs.alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_stop_recorded_kills_the_group_children_included(tmp_path):
    st = LabState(tmp_path)
    st.create()
    pid = procs.spawn(st, "worker", ["sh", "-c", "sleep 30 & echo $! > child; wait"], cwd=str(tmp_path))
    deadline = time.monotonic() + 5
    child_file = tmp_path / "child"
    # the shell creates the file before it writes the PID into it: wait for a whole line
    while not (child_file.exists() and child_file.read_text().endswith("\n")) and time.monotonic() < deadline:
        time.sleep(0.02)
    child = int(child_file.read_text())
    assert st.pids() == {"worker": pid} and procs.alive(child)
    assert procs.stop_recorded(st) == ["worker"]
    assert wait_gone(pid) and wait_gone(child)
    assert st.pids() == {}


def test_a_recycled_pid_is_left_alone(tmp_path):
    st = LabState(tmp_path)
    st.create()
    p = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        st.record_pid("ghost", p.pid)  # the PID file says ghost, but the start time differs
        st.path("pids", "ghost.start").write_text("1\n")
        assert procs.stop_recorded(st) == []
        assert procs.alive(p.pid)
    finally:
        p.kill()
        p.wait()


def test_start_time_reads_proc():
    assert procs.start_time(os.getpid()) is not None
    assert procs.start_time(2**22 + 12345) is None
