"""The lab API server's certificates and tokens, from the lab's CA (no root, no network)."""
from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from podnet.apiserver.auth import TokenTable
from podnet.lab import apiserver
from podnet.lab.pki import LabPKI
from podnet.lab.state import LabState
from podnet.lab.topology import make_spec


def load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_serving_and_admin_certificates_and_tokens(tmp_path):
    spec = make_spec("apit", 2, True, "none", "sqlite")
    state = LabState(tmp_path)
    state.create()
    tokens = apiserver.make_pki(spec, state)
    d = apiserver.pki_dir(state)
    ca = load(d / "ca.crt")
    serving, admin = load(d / "kube-apiserver.crt"), load(d / "kubernetes-admin.crt")
    for c in (serving, admin):
        c.verify_directly_issued_by(ca)
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(i) for i in sans.get_values_for_type(x509.IPAddress)} == \
        {"127.0.0.1", "198.18.0.11", "10.96.0.1", "fd00:198:18::11", "fd00:10:96::1"}
    assert "kubernetes.default.svc.cluster.local" in sans.get_values_for_type(x509.DNSName)
    assert [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:masters"]
    eku = admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert oct((d / "tokens.csv").stat().st_mode & 0o777) == "0o600"
    assert oct((d / "kubernetes-admin.key").stat().st_mode & 0o777) == "0o600"
    assert apiserver.read_tokens(state) == tokens
    table = TokenTable((d / "tokens.csv").read_text())
    n2 = table.lookup(tokens["node:n2"])
    assert n2 is not None and n2.user == "system:node:n2" and n2.groups == ("system:nodes",)
    cfg = apiserver.kubeconfig(state, "apit", "https://127.0.0.1:1", node="n1")
    assert cfg["users"][0] == {"name": "system:node:n1", "user": {"token": tokens["node:n1"]}}


def test_a_restarted_server_keeps_the_tokens_and_service_account_key(tmp_path):
    """The nodes' kubeconfigs and the pods' service account tokens outlive a restart of
    the API server (which makes its certificates again)."""
    spec = make_spec("apit", 2, False, "none", "kubernetes")
    state = LabState(tmp_path)
    state.create()
    first = apiserver.make_pki(spec, state)
    key = (apiserver.pki_dir(state) / apiserver.SA_KEY).read_bytes()
    assert apiserver.make_pki(spec, state) == first
    assert (apiserver.pki_dir(state) / apiserver.SA_KEY).read_bytes() == key
    apiserver.write_incluster_kubeconfig(state, spec)
    import yaml
    for node in ("n1", "n2"):
        cfg = yaml.safe_load(apiserver.incluster_kubeconfig_path(state, node).read_text())
        assert cfg["users"][0]["user"] == {"token": first[f"node:{node}"]}
        assert cfg["clusters"][0]["cluster"]["server"] == "https://198.18.0.11:6443"
    admin = yaml.safe_load(apiserver.incluster_kubeconfig_path(state).read_text())
    assert "client-certificate-data" in admin["users"][0]["user"]


def test_an_etcd_labs_ca_is_reused(tmp_path):
    spec = make_spec("apit", 1, False, "none", "etcd")
    state = LabState(tmp_path)
    state.create()
    p = LabPKI(apiserver.pki_dir(state), spec.name)
    p.create_ca()
    before = (apiserver.pki_dir(state) / "ca.crt").read_bytes()
    apiserver.make_pki(spec, state)
    assert (apiserver.pki_dir(state) / "ca.crt").read_bytes() == before
    load(apiserver.pki_dir(state) / "kube-apiserver.crt").verify_directly_issued_by(
        load(apiserver.pki_dir(state) / "ca.crt"))
