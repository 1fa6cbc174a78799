"""One BIRD process: its files, starting it, reconfiguring it, and asking it (birdc).

Every BIRD podnet runs has a directory of its own (`bird.conf`, the control socket
`bird.ctl`, `bird.pid`, `bird.log`) and runs in the network namespace of its caller (an
agent inside its node's netns) or of the given one (the lab's router); it is known by
its PID only. A new configuration is checked (`bird -p`) before it is written, then
BIRD is told to reload it (`birdc configure`): sessions whose settings did not change
stay up.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from podnet.dataplane.net.netns import netns_argv

BIRD_BIN = os.environ.get("PODNET_BIRD", "/usr/sbin/bird")
BIRDC_BIN = os.environ.get("PODNET_BIRDC", "/usr/sbin/birdc")
SETPRIV_BIN = shutil.which("setpriv") or "/usr/bin/setpriv"  # util-linux


class BirdError(Exception):
    pass


def available() -> str | None:
    """Why BIRD cannot run here, or None."""
    for b in (BIRD_BIN, BIRDC_BIN):
        if not (os.path.exists(b) or shutil.which(b)):
            return f"{b} is not installed (Debian's bird2)"
    if not os.path.exists(SETPRIV_BIN):
        return f"{SETPRIV_BIN} is not installed (util-linux)"
    return None


@dataclass(frozen=True)
class Session:
    name: str
    state: str  # BIRD's protocol state: up, start, down
    bgp_state: str  # Established, Active, Connect, ...
    neighbor: str
    since: str
    uptime: float  # seconds since the last state change
    imported: int
    filtered: int
    exported: int


class Bird:
    def __init__(self, directory: str | Path, netns: str | None = None):
        self.dir = Path(directory)
        self.netns = netns
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.dir / "bird.conf"

    @property
    def ctl(self) -> Path:
        return self.dir / "bird.ctl"

    @property
    def pidfile(self) -> Path:
        return self.dir / "bird.pid"

    def argv(self, recover: bool = False) -> list[str]:
        """`recover`: `-R`, graceful restart recovery (a previous BIRD's kernel routes are
        kept until this one's sessions have converged)."""
        return netns_argv(self.netns, [BIRD_BIN, "-f", "-c", str(self.conf), "-s", str(self.ctl),
                                       "-P", str(self.pidfile)] + (["-R"] if recover else []))

    def child_argv(self, recover: bool = False) -> list[str]:
        """argv for BIRD as our child (started in its own process group, so a signal to
        ours reaches us only, and we decide how BIRD stops): SIGKILLed when we die (the
        kernel's parent-death signal, set by setpriv before it execs BIRD), so a killed
        agent takes BIRD along, abruptly, which its peers treat as a restart (no Cease
        was sent): they keep its routes for the graceful restart time."""
        return [SETPRIV_BIN, "--pdeathsig", "KILL", "--", *self.argv(recover)]

    def check(self, text: str) -> None:
        """Refuse a configuration BIRD would refuse (before it replaces a good one)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "bird.conf.new"
        tmp.write_text(text)
        cp = subprocess.run([BIRD_BIN, "-p", "-c", str(tmp)], capture_output=True, text=True)
        if cp.returncode != 0:
            raise BirdError(f"BIRD refuses the rendered configuration: {cp.stderr.strip()}")

    def write(self, text: str) -> None:
        self.check(text)
        os.replace(self.dir / "bird.conf.new", self.conf)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def left_routes(self) -> bool:
        """Whether a previous BIRD left routes in this namespace's kernel (`proto bird`):
        then this start is a graceful restart."""
        for fam in ("-4", "-6"):
            cp = subprocess.run(netns_argv(self.netns, ["ip", fam, "route", "show", "proto", "bird"]),
                                capture_output=True, text=True)
            if cp.stdout.strip():
                return True
        return False

    def start(self, recover: bool | None = None) -> int:
        """Start BIRD on the written configuration, in the foreground of a child process
        of ours (it dies with us); returns its PID once it answers.
        `recover` (default: when a previous BIRD left routes): graceful restart recovery."""
        if recover is None:
            recover = self.left_routes()
        log = open(self.dir / "bird.log", "ab")
        try:
            self.proc = subprocess.Popen(self.child_argv(recover), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, close_fds=True,
                                         start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BirdError(f"bird exited ({self.proc.returncode}); see {self.dir / 'bird.log'}")
            if self.ctl.exists() and birdc(self.ctl, "show status").returncode == 0:
                return self.proc.pid
            time.sleep(0.05)
        raise BirdError(f"bird did not answer on {self.ctl} within 5 s")

    def configure(self) -> None:
        out = birdc(self.ctl, "configure").stdout
        if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
            raise BirdError(f"birdc configure: {out.strip()}")

    def stop(self) -> None:
        """Stop BIRD for good (SIGTERM: it sends its peers a Cease, they withdraw its
        routes at once, and it removes its own from the kernel)."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def birdc(ctl: str | Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BIRDC_BIN, "-s", str(ctl), *command.split()], capture_output=True,
                          text=True, timeout=10)


_PROTO = re.compile(r"^(?P<name>\S+)\s+BGP\s+\S+\s+(?P<state>\S+)\s+(?P<since>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)"
                    r"\s*(?P<info>.*)$")
_ROUTES = re.compile(r"Routes:\s+(\d+) imported,(?: (\d+) filtered,)? (\d+) exported")
_UPDATES = re.compile(r"Import updates:\s+(\d+|---)\s+(\d+|---)\s+(\d+|---)")


def parse_protocols(text: str, now: datetime | None = None) -> list[Session]:
    """`birdc show protocols all` -> the BGP sessions (pure)."""
    now = now or datetime.now()
    out: list[Session] = []
    cur: dict[str, str | int] = {}

    def flush() -> None:
        if cur:
            since = str(cur["since"])
            up = max(0.0, (now - datetime.strptime(since, "%Y-%m-%d %H:%M:%S")).total_seconds())
            out.append(Session(str(cur["name"]), str(cur["state"]), str(cur.get("bgp", "")),
                               str(cur.get("neighbor", "")), since, up, int(cur.get("imported", 0)),
                               int(cur.get("filtered", 0)), int(cur.get("exported", 0))))
            cur.clear()

    for line in text.splitlines():
        m = _PROTO.match(line)
        if m:
            flush()
            cur.update(name=m["name"], state=m["state"], since=m["since"])
            continue
        if not line.startswith(" ") or not cur:
            if line.strip() and not line.startswith(" "):
                flush()
            continue
        s = line.strip()
        if s.startswith("BGP state:"):
            cur["bgp"] = s.split(":", 1)[1].strip()
        elif s.startswith("Neighbor address:"):
            cur["neighbor"] = s.split(":", 1)[1].strip()
        elif (r := _ROUTES.search(s)) is not None:
            cur["imported"] = int(cur.get("imported", 0)) + int(r[1])
            cur["exported"] = int(cur.get("exported", 0)) + int(r[3])
        elif (u := _UPDATES.search(s)) is not None and u[3] != "---":
            cur["filtered"] = int(cur.get("filtered", 0)) + int(u[3])
    flush()
    return out


_ROUTE_HEAD = re.compile(r"^(?P<prefix>\S+)\s+\S+\s+\[(?P<proto>\S+)")


def parse_route_all(text: str) -> dict[str, str]:
    """`birdc show route for ADDR all` -> the best route's prefix, the protocol (the BGP
    session) it came from, its BGP next hop and AS path (pure); {} when BIRD has none."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith(("Table ", "BIRD ", "Access ")) or not line.strip():
            continue
        m = _ROUTE_HEAD.match(line)
        if m and not line[0].isspace():
            if out:
                break  # the first (best) route only
            out = {"prefix": m["prefix"], "session": m["proto"]}
            continue
        s = line.strip()
        if out and s.startswith("BGP.next_hop:"):
            hops = s.split(":", 1)[1].split()
            out["next_hop"] = hops[0] if hops else ""
        elif out and s.startswith("BGP.as_path:"):
            out["as_path"] = s.split(":", 1)[1].strip()
    return out


def sessions(ctl: str | Path) -> list[Session]:
    cp = birdc(ctl, "show protocols all")
    if cp.returncode != 0:
        raise BirdError(f"birdc -s {ctl}: {(cp.stderr or cp.stdout).strip()}")
    return parse_protocols(cp.stdout)
