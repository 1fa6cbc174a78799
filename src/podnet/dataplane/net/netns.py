"""Run commands inside a named network namespace. The one seam for "do X in netns N".

`netns=None` means the current namespace; callers in the lab always pass a lab namespace,
never None, so nothing runs in the machine's own namespace by accident.
"""
from __future__ import annotations

import subprocess
from typing import Sequence


class CommandError(Exception):
    def __init__(self, argv: Sequence[str], rc: int, stderr: str):
        super().__init__(f"{' '.join(argv)}: exit {rc}: {stderr.strip()}")
        self.argv = list(argv)
        self.rc = rc
        self.stderr = stderr


def netns_argv(netns: str | None, argv: Sequence[str]) -> list[str]:
    return (["ip", "netns", "exec", netns] if netns else []) + list(argv)


def run(netns: str | None, argv: Sequence[str], input: str | None = None,
        check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full = netns_argv(netns, argv)
    cp = subprocess.run(full, input=input, capture_output=True, text=True, timeout=timeout)
    if check and cp.returncode != 0:
        raise CommandError(full, cp.returncode, cp.stderr)
    return cp
