"""The lab's Kubernetes API server: its certificates, tokens, process and kubeconfig.

`podnet up` issues, from the lab's CA (lab/pki.py, shared with etcd's TLS) in
`<lab>/pki/`, a serving certificate for the control-plane node's underlay address,
127.0.0.1 and the in-cluster names (`kube-apiserver.crt`), an admin client certificate
(`kubernetes-admin.crt`: CN kubernetes-admin, O system:masters), and writes a static
token file with a token per node identity (system:node:<name>) and one for the default
service account, and the service account key that signs the tokens pods get (exec).
The server runs on the control-plane node (inside its netns) and listens on the node's
underlay address :6443 and on a loopback socket of the machine that `podnet up` opens
in the machine's namespace and hands over by file descriptor (a listening socket on
127.0.0.1 changes no link, route or rule there). `<lab>/kubeconfig` points kubectl at
the loopback listener.
"""
from __future__ import annotations

import base64
import os
import secrets
import socket
import ssl
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import yaml

from podnet.lab import incluster, procs
from podnet.lab.pki import LabPKI
from podnet.lab.state import LabState
from podnet.lab.topology import LabSpec

API_PORT = 6443
START_TIMEOUT = 60.0  # seconds; it fails at once if the process exits. Loaded machines took > 20 s to import
SANS = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local", "localhost")
ADMIN = ("kubernetes-admin", ("system:masters",))
SERVING, ADMIN_CERT = "kube-apiserver", "kubernetes-admin"   # file names in <lab>/pki/
SA_KEY = "service-account.key"   # signs the service account tokens pods get


class ApiServerError(Exception):
    pass


def pki_dir(state: LabState) -> Path:
    return state.path("pki")


def make_pki(spec: LabSpec, state: LabState) -> dict[str, str]:
    """CA, serving and admin certificates, tokens: {role: token}. The service account key
    and the tokens are made once: a restarted server keeps honouring what it handed out
    (the nodes' kubeconfigs, the pods' service account tokens)."""
    d = pki_dir(state)
    p = LabPKI(d, spec.name)
    p.ensure_ca()
    cp = spec.nodes[0]
    ips = ["127.0.0.1", cp.ip4, incluster.SERVICE_IP_V4] + \
        ([cp.ip6, incluster.SERVICE_IP_V6] if cp.ip6 else [])
    p.issue_serving(SERVING, "kube-apiserver", ips, SANS)
    p.issue_user(ADMIN_CERT, *ADMIN)
    if not (d / SA_KEY).exists():
        fd = os.open(d / SA_KEY, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    kept = read_tokens(state) if (d / "tokens.csv").exists() else {}
    tokens = {f"node:{n.name}": kept.get(f"node:{n.name}") or secrets.token_urlsafe(24) for n in spec.nodes}
    tokens["serviceaccount:default:default"] = kept.get("serviceaccount:default:default") or secrets.token_urlsafe(24)
    lines = []
    for role, tok in tokens.items():
        if role.startswith("node:"):
            node = role.split(":", 1)[1]
            lines.append(f'{tok},system:node:{node},node-{node},"system:nodes"')
        else:
            lines.append(f'{tok},system:serviceaccount:default:default,sa-default,'
                         f'"system:serviceaccounts,system:serviceaccounts:default"')
    fd = os.open(d / "tokens.csv", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    return tokens


def read_tokens(state: LabState) -> dict[str, str]:
    """{"node:n1": token, "serviceaccount:default:default": token}."""
    out = {}
    for line in (pki_dir(state) / "tokens.csv").read_text().splitlines():
        tok, user = line.split(",")[:2]
        if user.startswith("system:node:"):
            out["node:" + user[len("system:node:"):]] = tok
        elif user.startswith("system:serviceaccount:"):
            out["serviceaccount:" + user[len("system:serviceaccount:"):]] = tok
    return out


def loopback_socket(port: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(512)
    return s


def start(spec: LabSpec, state: LabState, datastore_url: str, progress: Callable[[str], None],
          port: int = 0) -> dict[str, Any]:
    make_pki(spec, state)
    cp = spec.nodes[0]
    d = pki_dir(state)
    listen = [f"{cp.ip4}:{API_PORT}"] + ([f"[{cp.ip6}]:{API_PORT}"] if cp.ip6 else [])
    sock = loopback_socket(port)
    local = f"https://127.0.0.1:{sock.getsockname()[1]}"
    try:
        argv = procs.podnet_argv(
            "--datastore", datastore_url, "apiserver", "--cert", str(d / f"{SERVING}.crt"),
            "--key", str(d / f"{SERVING}.key"), "--client-ca", str(d / "ca.crt"),
            "--token-file", str(d / "tokens.csv"), "--listen-fd", str(sock.fileno()),
            "--advertise", f"{cp.ip4}:{API_PORT}", "--allow-exec",
            "--service-account-key", str(d / SA_KEY), "--lab-state", str(state.dir),
            *[x for a in listen for x in ("--listen", a)])
        pid = procs.spawn(state, "apiserver", argv, netns=cp.netns, net_only=True,
                          pass_fds=(sock.fileno(),))
    finally:
        sock.close()  # the server holds its own copy
    wait_healthy(local, d / "ca.crt", pid, state)
    info = {"server": local, "inCluster": f"https://{cp.ip4}:{API_PORT}"}
    write_kubeconfig(state, spec.name, local)
    progress(f"API server on {cp.name} ({info['inCluster']}) and {local}, pid {pid}")
    return info


def wait_healthy(url: str, ca: Path, pid: int, state: LabState) -> None:
    ctx = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", context=ctx, timeout=1.0) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if not procs.alive(pid):
            raise ApiServerError(f"the API server exited at start; see {state.log('apiserver')}")
        if time.monotonic() > deadline:
            raise ApiServerError(f"the API server did not answer on {url} within "
                                 f"{START_TIMEOUT:.0f}s; see {state.log('apiserver')}")
        time.sleep(0.1)


def kubeconfig(state: LabState, lab: str, server: str, node: str | None = None) -> dict[str, Any]:
    """The admin kubeconfig (client certificate), or a node's (its bearer token)."""
    d = pki_dir(state)

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()
    if node is None:
        user_name = f"podnet-{lab}-admin"
        user: dict[str, Any] = {"client-certificate-data": b64(d / f"{ADMIN_CERT}.crt"),
                                "client-key-data": b64(d / f"{ADMIN_CERT}.key")}
    else:
        tok = read_tokens(state).get(f"node:{node}")
        if tok is None:
            raise ApiServerError(f"lab {lab} has no node {node!r}")
        user_name, user = f"system:node:{node}", {"token": tok}
    cluster = f"podnet-{lab}"
    return {"apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": cluster, "cluster": {
                "server": server, "certificate-authority-data": b64(d / "ca.crt")}}],
            "users": [{"name": user_name, "user": user}],
            "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user_name,
                                                       "namespace": "default"}}],
            "current-context": cluster}


def incluster_kubeconfig_path(state: LabState, node: str | None = None) -> Path:
    return state.path("kubeconfig-incluster" + (f"-{node}" if node else ""))


def write_incluster_kubeconfig(state: LabState, spec: LabSpec) -> Path:
    """The kubeconfigs the lab's processes use in Kubernetes mode (issue 15 §2): the API
    server at the control-plane node's underlay address, which every node's namespace
    reaches (the machine's loopback listener is not reachable from there). A node's agent
    and CNI get the node's identity (its token: system:node:<name>, in system:nodes), which
    may write only that Node, Pod status and IPAM blocks (apiserver/auth.py); the kubelet
    with the lab's controllers and the DNS pods, the control plane's processes, the
    admin's."""
    server = f"https://{spec.nodes[0].ip4}:{API_PORT}"
    for node in [None, *(n.name for n in spec.nodes)]:
        p = incluster_kubeconfig_path(state, node)
        p.write_text(yaml.safe_dump(kubeconfig(state, spec.name, server, node), sort_keys=False))
        p.chmod(0o600)
    return incluster_kubeconfig_path(state)


def kubeconfig_path(state: LabState) -> Path:
    return state.path("kubeconfig")


def write_kubeconfig(state: LabState, lab: str, server: str) -> Path:
    p = kubeconfig_path(state)
    p.write_text(yaml.safe_dump(kubeconfig(state, lab, server), sort_keys=False))
    p.chmod(0o600)
    return p
