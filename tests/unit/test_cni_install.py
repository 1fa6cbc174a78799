"""The install step of the podnet-node DaemonSet (issue 15 §3), run against a temporary root."""
from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from podnet.cni import install
from podnet.cni.config import parse_ipam

ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def _ca_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for d in ("host/opt/cni/bin", "host/etc/cni/net.d", "sa"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "sa" / "token").write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwb2RuZXQtY25pIn0.c2ln\n")
    (tmp_path / "sa" / "ca.crt").write_text(_ca_pem())
    return tmp_path


def run(root: Path, env=ENV, node="node-a") -> list[str]:
    return install.install(root / "host/opt/cni/bin", root / "host/etc/cni/net.d", "/etc/cni/net.d",
                           root / "sa", node, env, mtu=1450, dual_stack=True)


def snapshot(root: Path) -> dict[str, tuple[int, bytes | str, int]]:
    out = {}
    for p in sorted((root / "host").rglob("*")):
        st = os.lstat(p)
        body = os.readlink(p) if p.is_symlink() else (p.read_bytes() if p.is_file() else b"")
        out[str(p.relative_to(root))] = (st.st_mode, body, st.st_mtime_ns)
    return out


def test_install_writes_every_file_with_its_mode(root: Path):
    changed = run(root)
    bin_dir, net_dir = root / "host/opt/cni/bin", root / "host/etc/cni/net.d"
    assert len(changed) == 6
    # the launchers: links to the copied launcher, which finds client.py beside its bin/
    for name in ("podnet-cni", "podnet-ipam"):
        assert os.readlink(bin_dir / name) == "podnet/bin/podnet-cni"
        assert (bin_dir / name).resolve() == (bin_dir / "podnet/bin/podnet-cni").resolve()
    launcher = bin_dir / "podnet/bin/podnet-cni"
    assert os.stat(launcher).st_mode & 0o777 == 0o755
    assert launcher.read_bytes() == (install.SRC / "bin/podnet-cni").read_bytes()
    assert (bin_dir / "podnet/client.py").read_bytes() == (install.SRC / "client.py").read_bytes()
    # the kubeconfig: a secret, 0600, naming the in-cluster API server, the CA and the token
    kc_path = net_dir / install.KUBECONFIG
    assert os.stat(kc_path).st_mode & 0o777 == 0o600
    kc = yaml.safe_load(kc_path.read_text())
    cluster = kc["clusters"][0]["cluster"]
    assert cluster["server"] == "https://10.96.0.1:443"
    assert base64.b64decode(cluster["certificate-authority-data"]).decode().strip() == \
        (root / "sa/ca.crt").read_text().strip()
    assert kc["users"][0]["user"]["token"] == (root / "sa/token").read_text().strip()
    assert kc["current-context"] == kc["contexts"][0]["name"]
    # the conflist: one plugin whose ipam the plugin's own parser accepts
    cl = json.loads((net_dir / install.CONFLIST).read_text())
    assert os.stat(net_dir / install.CONFLIST).st_mode & 0o777 == 0o644
    assert cl["name"] == "podnet" and [p["type"] for p in cl["plugins"]] == ["podnet-cni"]
    plugin = {"cniVersion": cl["cniVersion"], "name": cl["name"], **cl["plugins"][0]}
    ipam = parse_ipam(plugin, {"CNI_ARGS": ""})
    assert ipam.datastore == "kubernetes://?kubeconfig=/etc/cni/net.d/podnet-kubeconfig"
    assert ipam.node == "node-a" and plugin["mtu"] == 1450 and ipam.assign[6] == "true"
    assert not [p for p in (root / "host").rglob(".*tmp*")], "no temporary file left"


def test_second_run_changes_nothing(root: Path):
    run(root)
    before = snapshot(root)
    assert run(root) == []
    assert snapshot(root) == before


def test_changed_token_rewrites_only_the_kubeconfig(root: Path):
    run(root)
    (root / "sa/token").write_text("rotated.token.value")
    assert run(root) == [str(root / "host/etc/cni/net.d" / install.KUBECONFIG)]
    assert "rotated.token.value" in (root / "host/etc/cni/net.d" / install.KUBECONFIG).read_text()


def test_ipv6_api_server_address_is_bracketed(root: Path):
    run(root, env={"KUBERNETES_SERVICE_HOST": "fd00:10:96::1", "KUBERNETES_SERVICE_PORT": "443"})
    kc = yaml.safe_load((root / "host/etc/cni/net.d" / install.KUBECONFIG).read_text())
    assert kc["clusters"][0]["cluster"]["server"] == "https://[fd00:10:96::1]:443"


@pytest.mark.parametrize("breakage, words", [
    (lambda r: (r / "sa/token").unlink(), "service account token"),
    (lambda r: (r / "sa/token").write_text(""), "is empty"),
    (lambda r: (r / "sa/ca.crt").write_text("not a cert"), "no PEM certificate"),
    (lambda r: (r / "host/etc/cni/net.d").rmdir(), "host path mounted"),
])
def test_refuses_missing_inputs_and_writes_nothing(root: Path, breakage, words):
    breakage(root)
    with pytest.raises(install.InstallError, match=words):
        run(root)
    assert not list((root / "host/opt/cni/bin").iterdir())


def test_refuses_without_api_server_or_node(root: Path):
    with pytest.raises(install.InstallError, match="KUBERNETES_SERVICE_HOST"):
        run(root, env={})
    with pytest.raises(install.InstallError, match="node name"):
        run(root, node="")


def test_command_line(root: Path):
    env = {**os.environ, **ENV, "NODE_NAME": "node-b"}
    args = [sys.executable, "-m", "podnet.cni.install", "--bin-dir", str(root / "host/opt/cni/bin"),
            "--net-dir", str(root / "host/etc/cni/net.d"), "--sa-dir", str(root / "sa")]
    cp = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.count("wrote ") == 6
    cp = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0 and "already in place" in cp.stdout
    cp = subprocess.run(args, env={**env, "NODE_NAME": ""}, capture_output=True, text=True, timeout=60)
    assert cp.returncode == 1 and "no node name" in cp.stderr


def test_refresh_carries_a_rotated_token_into_the_kubeconfig(root: Path):
    """--refresh: the Secret's token is rotated in place; the next pass rewrites the
    kubeconfig with it (and only it), a pass with nothing new writes nothing."""
    import threading
    run(root)
    kubeconfig = root / "host/etc/cni/net.d" / install.KUBECONFIG
    before = snapshot(root)
    (root / "sa" / "token").write_text("rotated-token\n")
    passes: list[list[str]] = []
    stop = threading.Event()

    def one() -> list[str]:
        passes.append(run(root))
        if len(passes) == 2:
            stop.set()
        return passes[-1]
    install.refresh(0.01, stop, one)
    assert passes == [[str(kubeconfig)], []]
    assert "rotated-token" in kubeconfig.read_text()
    after = snapshot(root)
    changed = {k for k in after if after[k] != before[k]}
    assert changed - {"host/etc/cni/net.d"} == {f"host/etc/cni/net.d/{install.KUBECONFIG}"}  # (its dir's mtime)
