"""Install podnet's CNI plugin on a node, as Calico's install-cni does (issue 15 §3).

Run by the podnet-node DaemonSet's init container (`python -m podnet.cni.install`), with
the host's /opt/cni/bin and /etc/cni/net.d mounted into it. It writes:
- into the bin dir: `podnet/client.py` and `podnet/bin/podnet-cni` (the thin launchers,
  which need only the host's python3 and the CNI daemon of the same node), and the links
  `podnet-cni` and `podnet-ipam` to the launcher (the launcher finds client.py next to
  its resolved bin/ dir);
- into the net.d dir: the plugin's kubeconfig (`podnet-kubeconfig`, mode 0600: it holds
  the podnet-cni service account's token) and the conflist (`10-podnet.conflist`),
  whose datastore URL names that kubeconfig at its path on the host (`--host-net-dir`),
  where the CNI daemon (mounting the same dir) opens it.
Every file is written to a temporary name and renamed, so a runtime never reads half a
file; a file already holding the same bytes and mode is left alone, so a second run
changes nothing. Missing inputs (token, CA, API server address, node name) are refused
with one line naming what is missing. Imports only the standard library and cni.config.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Mapping

from podnet.cni.config import make_netconf

CONFLIST = "10-podnet.conflist"
KUBECONFIG = "podnet-kubeconfig"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SRC = Path(__file__).resolve().parent  # client.py and bin/podnet-cni


class InstallError(Exception):
    """An input is missing or unusable: the message says which."""


def write_atomic(path: Path, data: bytes, mode: int) -> bool:
    """`path` holds `data` with `mode` afterwards; False when it already did."""
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o7777) == mode and not path.is_symlink():
            return False
    except OSError:
        pass
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)  # the umask may have narrowed the mode given to open
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return True


def link_atomic(path: Path, target: str) -> bool:
    if path.is_symlink() and os.readlink(path) == target:
        return False
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, path)
    return True


def _read(path: Path, what: str) -> str:
    try:
        text = path.read_text().strip()
    except OSError as e:
        raise InstallError(f"{what}: cannot read {path}: {e.strerror or e}") from None
    if not text:
        raise InstallError(f"{what}: {path} is empty")
    return text


def kubeconfig(server: str, ca_pem: str, token: str) -> str:
    """The plugin's kubeconfig, in JSON (a YAML subset kubectl and client-go read)."""
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "podnet",
           "clusters": [{"name": "local", "cluster": {
               "server": server,
               "certificate-authority-data": _b64(ca_pem.encode() + b"\n")}}],
           "users": [{"name": "podnet-cni", "user": {"token": token}}],
           "contexts": [{"name": "podnet", "context": {"cluster": "local", "user": "podnet-cni"}}]}
    return json.dumps(doc, indent=2) + "\n"


def _b64(data: bytes) -> str:
    import base64
    return base64.b64encode(data).decode()


def api_server(env: Mapping[str, str]) -> str:
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise InstallError("KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set "
                           "(run in a pod, or set them to the API server's address)")
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def install(bin_dir: Path, net_dir: Path, host_net_dir: str, sa_dir: Path, node: str,
            env: Mapping[str, str], mtu: int = 1500, dual_stack: bool = False) -> list[str]:
    """Install everything; returns the paths written (empty when nothing changed)."""
    if not node:
        raise InstallError("no node name: give --node or set NODE_NAME (the downward API's spec.nodeName)")
    server = api_server(env)
    token = _read(sa_dir / "token", "service account token")
    ca = _read(sa_dir / "ca.crt", "cluster CA")
    if "BEGIN CERTIFICATE" not in ca:
        raise InstallError(f"cluster CA: {sa_dir / 'ca.crt'} holds no PEM certificate")
    for d in (bin_dir, net_dir):
        if not d.is_dir():
            raise InstallError(f"{d}: no such directory (is the host path mounted?)")
    changed: list[str] = []
    (bin_dir / "podnet" / "bin").mkdir(parents=True, exist_ok=True)
    files = [(bin_dir / "podnet" / "client.py", (SRC / "client.py").read_bytes(), 0o644),
             (bin_dir / "podnet" / "bin" / "podnet-cni", (SRC / "bin" / "podnet-cni").read_bytes(), 0o755),
             (net_dir / KUBECONFIG, kubeconfig(server, ca, token).encode(), 0o600)]
    url = f"kubernetes://?kubeconfig={host_net_dir.rstrip('/')}/{KUBECONFIG}"
    conf = make_netconf(url, node, dual_stack, mtu)
    conflist = {"cniVersion": conf.pop("cniVersion"), "name": conf.pop("name"), "plugins": [conf]}
    files.append((net_dir / CONFLIST, (json.dumps(conflist, indent=2) + "\n").encode(), 0o644))
    for path, data, mode in files:
        if write_atomic(path, data, mode):
            changed.append(str(path))
    for name in ("podnet-cni", "podnet-ipam"):
        if link_atomic(bin_dir / name, "podnet/bin/podnet-cni"):
            changed.append(str(bin_dir / name))
    return changed


def refresh(every: float, stop: threading.Event, run: Callable[[], list[str]]) -> None:
    """`--refresh SECONDS`: install again every `every` seconds until `stop`, so a rotated
    service account token (the Secret's volume is updated in place) reaches the plugin's
    kubeconfig; only what changed is rewritten, and a long-lived client of that kubeconfig
    (the CNI daemon) reads it again on its next 401 (datastore/kubernetes.py). A failed
    pass is reported and retried."""
    while not stop.wait(every):
        try:
            for path in run():
                print(f"refreshed {path}", flush=True)
        except (InstallError, OSError) as e:
            print(f"podnet install-cni: refresh: {e}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m podnet.cni.install", description=__doc__.splitlines()[0])
    ap.add_argument("--bin-dir", default="/host/opt/cni/bin", help="the host's CNI bin dir, as mounted here")
    ap.add_argument("--net-dir", default="/host/etc/cni/net.d", help="the host's CNI config dir, as mounted here")
    ap.add_argument("--host-net-dir", default="/etc/cni/net.d", help="the config dir's path on the host")
    ap.add_argument("--sa-dir", default=SA_DIR, help="the podnet-cni service account's token and ca.crt")
    ap.add_argument("--node", default=os.environ.get("NODE_NAME", ""), help="this node's name (env NODE_NAME)")
    ap.add_argument("--mtu", type=int, default=int(os.environ.get("PODNET_MTU") or 1500))
    ap.add_argument("--dual-stack", action="store_true", default=os.environ.get("PODNET_DUAL_STACK") == "true")
    ap.add_argument("--refresh", type=float, default=0.0, metavar="SECONDS",
                    help="then keep installing every SECONDS (a sidecar: a rotated token reaches the kubeconfig)")
    ns = ap.parse_args(argv)

    def run() -> list[str]:
        return install(Path(ns.bin_dir), Path(ns.net_dir), ns.host_net_dir, Path(ns.sa_dir),
                       ns.node, os.environ, ns.mtu, ns.dual_stack)
    try:
        changed = run()
    except InstallError as e:
        print(f"podnet install-cni: {e}", file=sys.stderr)
        return 1
    print("\n".join(f"wrote {p}" for p in changed) or "podnet install-cni: everything already in place",
          flush=True)
    if ns.refresh > 0:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        refresh(ns.refresh, stop, run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
