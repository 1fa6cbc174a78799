"""`podnet probe`'s core: real connections from pods (network namespaces) to addresses.

`probe(sources, targets, port, protocol)` starts one short helper per source inside its
netns (`ip netns exec`), which connects to every target at once and reports one result
per target: ok, timeout, refused, unreachable, or untestable (SCTP on a kernel without
SCTP: socket() fails with EPROTONOSUPPORT). Only `ok` counts as allowed; `untestable`
is neither allowed nor denied. TCP and SCTP: a completed connect. UDP: a reply to a
datagram (the servers echo).
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

from podnet.calc.policy.table import TruthTable
from podnet.dataplane.net.netns import netns_argv

# Runs inside the source pod's netns: argv = json [targets], port, proto, timeout.
_HELPER = r'''
import errno, json, socket, sys, threading
targets, port, proto, timeout = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
out = {}
def one(ip):
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        if proto == "UDP":
            s = socket.socket(fam, socket.SOCK_DGRAM)
        elif proto == "SCTP":
            s = socket.socket(fam, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
        else:
            s = socket.socket(fam, socket.SOCK_STREAM)
    except OSError as e:
        out[ip] = "untestable" if e.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT) else "error"
        return
    s.settimeout(timeout)
    try:
        s.connect((ip, port))
        if proto == "UDP":
            s.send(b"probe")
            s.recv(64)
        out[ip] = "ok"
    except socket.timeout:
        out[ip] = "timeout"
    except ConnectionRefusedError:
        out[ip] = "refused"
    except OSError as e:
        out[ip] = "unreachable" if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH) else "error"
    finally:
        s.close()
ts = [threading.Thread(target=one, args=(t,)) for t in targets]
[t.start() for t in ts]
[t.join() for t in ts]
print(json.dumps(out))
'''


@dataclass(frozen=True)
class ProbeResult:
    source: str
    target: str
    outcome: str  # ok | timeout | refused | unreachable | untestable | error

    @property
    def allowed(self) -> bool | None:
        return None if self.outcome == "untestable" else self.outcome == "ok"


def probe(sources: list[tuple[str, str]], targets: list[tuple[str, str]], port: int,
          protocol: str = "TCP", timeout: float = 1.0) -> tuple[TruthTable, list[ProbeResult]]:
    """`sources`: (label, netns); `targets`: (label, address). A source whose own address
    is a target connects to itself through its loopback, as a pod does."""
    ips = [ip for _, ip in targets]
    procs = [(label, subprocess.Popen(
        netns_argv(ns, [sys.executable, "-c", _HELPER, json.dumps(ips), str(port), protocol, str(timeout)]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)) for label, ns in sources]
    table = TruthTable([s for s, _ in sources], [t for t, _ in targets], port=port, protocol=protocol)
    results: list[ProbeResult] = []
    for label, p in procs:
        out, err = p.communicate(timeout=timeout * 4 + 30)
        got = json.loads(out) if p.returncode == 0 and out.strip() else {}
        for tlabel, ip in targets:
            r = ProbeResult(label, tlabel, got.get(ip, "error" if got else f"error: {err.strip()[:200]}"))
            results.append(r)
            table.cells[(label, tlabel)] = r.allowed
    return table, results
