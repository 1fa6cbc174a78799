"""Helpers for driving the plugins as a runtime does, inside namespaces we create.

Every namespace is `pnt-cni-<run id>-<name>` and is deleted in teardown, also on failure;
the plugins run in a node namespace, never in the machine's own one.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

from podnet.api.defaults import TEST_PREFIX
from podnet.api.objects import from_dict
from podnet.cni.runtime import default_cni_path

BIN = os.path.dirname(os.path.abspath(sys.executable))
CNI_PATH = default_cni_path()


def pool(name, cidr, **spec):
    return from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": name},
                      "spec": {"cidr": cidr, **spec}})


class Lab:
    def __init__(self, tmp_path):
        self.id = secrets.token_hex(3)
        self.namespaces: list[str] = []
        self.url = f"sqlite:///{tmp_path}/cni.db"
        from podnet.datastore.sqlite import SqliteDatastore
        self.store = SqliteDatastore(self.url)
        self.node = self.netns("node")
        # the node's own plugin dir, first on the daemon's search path (fake plugins go here)
        self.plugin_dir = str(tmp_path / "cnibin")
        os.makedirs(self.plugin_dir, exist_ok=True)
        self.daemon = None

    def start_daemon(self, url=None):
        """(Re)start the node's CNI daemon, serving `url` (default: the lab's store)."""
        from podnet.cni import daemon as cnid
        self.stop_daemon()
        self.daemon = cnid.start(self.node, datastore=url or self.url,
                                 cni_path=f"{self.plugin_dir}:{CNI_PATH}")
        return self.daemon

    def stop_daemon(self):
        from podnet.cni import daemon as cnid
        if self.daemon is not None:
            cnid.stop(self.daemon)
            self.daemon = None

    def netns(self, name):
        full = f"{TEST_PREFIX}cni-{self.id}-{name}"
        subprocess.run(["ip", "netns", "add", full], check=True)
        self.namespaces.append(full)
        subprocess.run(["ip", "-n", full, "link", "set", "lo", "up"], check=True)
        return full

    def path(self, ns):
        return f"/var/run/netns/{ns}"

    def sh(self, ns, *argv, check=True):
        cp = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True)
        if check and cp.returncode:
            raise AssertionError(f"{argv} in {ns}: {cp.stderr}")
        return cp

    def ping(self, ns, ip):
        """True when any of three echo requests is answered: CI once lost a lone first ping
        after 16 parallel ADDs (not reproduced in 20 runs here, quiet or loaded)."""
        return self.sh(ns, "ping", "-c", "3", "-i", "0.3", "-W", "2", ip, check=False).returncode == 0

    def raw(self, plugin, env, stdin, ns=None):
        """One plugin call over the raw protocol: (exit code, parsed stdout or None)."""
        full = {"PATH": os.environ["PATH"], "CNI_PATH": CNI_PATH, **env}
        argv = (["ip", "netns", "exec", ns or self.node] if ns is not False else []) + [os.path.join(BIN, plugin) if "/" not in plugin and os.path.exists(os.path.join(BIN, plugin)) else plugin]
        data = stdin if isinstance(stdin, bytes) else json.dumps(stdin).encode()
        cp = subprocess.run(argv, input=data, env=full, capture_output=True)
        out = cp.stdout.decode().strip()
        return cp.returncode, (json.loads(out) if out else None), cp.stderr.decode()

    def allocations(self):
        return {h for r in self.store.list("IPAMBlock").items
                for h in (r.spec.get("allocations") or {}).values()}

    def close(self):
        self.stop_daemon()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.store.close()
