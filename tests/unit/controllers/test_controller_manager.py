"""The lab's controllers are supervised: one that fails is restarted, and all stop with the kubelet."""
from __future__ import annotations

import threading

from podnet.controllers import manager as controllers


def test_a_failing_controller_is_restarted_until_stopped(tmp_path, monkeypatch):
    runs: list[int] = []
    ran_again = threading.Event()
    stop = threading.Event()

    class Flaky:
        def __init__(self, store):
            self.store = store

        def run(self, stop_event):
            runs.append(self.store.revision())
            if len(runs) == 1:
                raise RuntimeError("lost the store")
            ran_again.set()
            stop_event.wait()

    monkeypatch.setattr(controllers, "CONTROLLERS", (Flaky,))
    monkeypatch.setattr(controllers, "RESTART_FIRST", 0.01)
    names = controllers.start_controllers(f"sqlite://{tmp_path}/s.db", stop)
    assert names == ["Flaky"]
    assert ran_again.wait(5), "the controller was not restarted after failing"
    stop.set()
    assert len(runs) == 2
