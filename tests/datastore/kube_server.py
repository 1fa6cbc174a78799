"""An API server process over a SQLite store, for the Kubernetes datastore's conformance run.

Cheaper than a lab (no namespaces, no root): `podnet apiserver` on a free loopback port,
certificates from a throwaway CA (lab/pki.py), an admin kubeconfig. `restart()` kills the
process (SIGKILL: no graceful goodbye to its watchers) and starts it again on the same port
over the same store, as a control-plane restart does. `compact(rev)` compacts the store behind
the server, as kube-apiserver compacts its etcd: the Kubernetes API itself has no such verb.
"""
from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

START_TIMEOUT = 60.0  # a loaded 2-core machine has taken over 30 s to start Python and the server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KubeApiServer:
    def __init__(self, workdir: Path):
        from podnet.lab.pki import LabPKI
        self.dir = workdir
        self.store_url = f"sqlite://{workdir / 'store.db'}"
        self.port = _free_port()
        self.pki = workdir / "pki"
        p = LabPKI(self.pki, "kd-test")
        p.ensure_ca()
        p.issue_serving("kube-apiserver", "kube-apiserver", ["127.0.0.1"], ("localhost",))
        p.issue_user("admin", "kubernetes-admin", ("system:masters",))
        self.kubeconfig = workdir / "kubeconfig"
        self._write_kubeconfig()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "apiserver.log"
        self.token_file: Path | None = None   # static bearer tokens (--token-file), read at start

    def _write_kubeconfig(self) -> None:
        cfg = {"apiVersion": "v1", "kind": "Config",
               "clusters": [{"name": "kd", "cluster": {"server": f"https://127.0.0.1:{self.port}",
                                                       "certificate-authority": str(self.pki / "ca.crt")}}],
               "users": [{"name": "admin", "user": {"client-certificate": str(self.pki / "admin.crt"),
                                                    "client-key": str(self.pki / "admin.key")}}],
               "contexts": [{"name": "kd", "context": {"cluster": "kd", "user": "admin"}}],
               "current-context": "kd"}
        self.kubeconfig.write_text(yaml.safe_dump(cfg))

    def user_kubeconfig(self, name: str, user: str, groups: tuple[str, ...]) -> Path:
        """A kubeconfig with a client certificate for `user` in `groups` (a node identity:
        `system:node:<name>`, `system:nodes`)."""
        from podnet.lab.pki import LabPKI
        cert = LabPKI(self.pki, "kd-test").issue_user(name, user, groups)
        path = self.dir / f"kubeconfig-{name}"
        cfg = yaml.safe_load(self.kubeconfig.read_text())
        cfg["users"][0]["user"] = {"client-certificate": cert.cert, "client-key": cert.key}
        path.write_text(yaml.safe_dump(cfg))
        return path

    @property
    def url(self) -> str:
        return f"kubernetes://?kubeconfig={self.kubeconfig}"

    def start(self) -> None:
        from podnet.apiserver.bootstrap import ensure_default_namespaces
        from podnet.apiserver.write import Writer
        from podnet.datastore.interface import open_datastore
        store = open_datastore(self.store_url)
        try:
            ensure_default_namespaces(Writer(store))
        finally:
            store.close()
        argv = [sys.executable, "-m", "podnet.cli.main", "--datastore", self.store_url, "apiserver",
                "--cert", str(self.pki / "kube-apiserver.crt"), "--key", str(self.pki / "kube-apiserver.key"),
                "--client-ca", str(self.pki / "ca.crt"), "--listen", f"127.0.0.1:{self.port}"]
        if self.token_file is not None:
            argv += ["--token-file", str(self.token_file)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/readyz", context=ctx,
                                            timeout=1.0) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop(signal.SIGKILL)   # a server that starts late must not outlive the test
                raise RuntimeError(f"the API server did not start within {START_TIMEOUT:.0f} s: "
                                   f"{self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop(signal.SIGKILL)
        self.start()

    def compact(self, revision: int) -> None:
        from podnet.datastore.interface import open_datastore
        store = open_datastore(self.store_url)
        try:
            store.compact(revision)
        finally:
            store.close()
