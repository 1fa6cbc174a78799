"""The lab's certificates: one CA per lab, a server certificate for etcd, one client
certificate per component that talks to etcd (issue 12 §1). Files only, no network.

Made with the `cryptography` library at `podnet up`, under `<lab dir>/pki/`:
`ca.crt`, `etcd-server.{crt,key}` and `<who>.{crt,key}` for each client (`cli`,
`kubelet`, `controllers`, `cni`, `dns`, `apiserver`, `agent-<node>`); the Kubernetes API
server's serving certificate and the admin's client certificate (lab/apiserver.py). Keys are EC P-256, written
0600 (created with that mode, never readable by anyone else even for a moment); the
directory is 0700. The CA's key is kept beside it (0600) only so a later component can
be issued a certificate; nothing reads it at run time.

The client certificate's CN names the component (`podnet:agent-n1`): etcd's
`--client-cert-auth` checks only that the CA signed it; the name shows in etcd's logs and
is what etcd's RBAC would use if it were turned on.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 365
CA_NAME = "ca"
SERVER_NAME = "etcd-server"


@dataclass(frozen=True)
class ClientCert:
    ca: str
    cert: str
    key: str


def _write_private(path: Path, data: bytes) -> None:
    """Write with mode 0600 from the first byte (O_CREAT with the mode, no umask race)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str, lab: str, orgs: Iterable[str] | None = None) -> x509.Name:
    """CN and O: kube-apiserver reads a client certificate's CN as the user and each O as
    a group, so a user's certificate carries its groups there (etcd ignores both)."""
    orgs = [f"podnet lab {lab}"] if orgs is None else list(orgs)
    return x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class LabPKI:
    def __init__(self, directory: Path, lab: str):
        self.dir = Path(directory)
        self.lab = lab

    def path(self, name: str, ext: str) -> Path:
        return self.dir / f"{name}.{ext}"

    @property
    def ca_cert(self) -> Path:
        return self.path(CA_NAME, "crt")

    def client(self, who: str) -> ClientCert:
        return ClientCert(str(self.ca_cert), str(self.path(who, "crt")), str(self.path(who, "key")))

    # ---- issuing ----------------------------------------------------------------------
    def create_ca(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        name = _name(f"podnet lab {self.lab} CA", self.lab)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        _write_private(self.path(CA_NAME, "key"), _key_pem(key))
        self.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def ensure_ca(self) -> None:
        """The lab's CA, made on first use (an etcd lab made it with etcd's certificates)."""
        if not (self.ca_cert.exists() and self.path(CA_NAME, "key").exists()):
            self.create_ca()

    def _issue(self, name: str, cn: str, usages: list[x509.ObjectIdentifier],
               sans: list[x509.GeneralName], orgs: Iterable[str] | None = None) -> None:
        ca_key = serialization.load_pem_private_key(self.path(CA_NAME, "key").read_bytes(), None)
        ca = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        b = (x509.CertificateBuilder().subject_name(_name(cn, self.lab, orgs)).issuer_name(ca.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                          content_commitment=False, data_encipherment=False,
                                          key_agreement=False, key_cert_sign=False, crl_sign=False,
                                          encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                            critical=False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = b.sign(ca_key, hashes.SHA256())
        _write_private(self.path(name, "key"), _key_pem(key))
        self.path(name, "crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def issue_server(self, ips: Iterable[str], dns_names: Iterable[str] = ("localhost",)) -> None:
        """etcd's certificate, for clients and for its own peer listener (so both usages)."""
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        self._issue(SERVER_NAME, f"podnet:{SERVER_NAME}",
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], sans)

    def issue_client(self, who: str) -> ClientCert:
        self._issue(who, f"podnet:{who}", [ExtendedKeyUsageOID.CLIENT_AUTH], [])
        return self.client(who)

    def issue_serving(self, name: str, cn: str, ips: Iterable[str], dns_names: Iterable[str]) -> None:
        """A server's certificate (the Kubernetes API server's), `<name>.{crt,key}`."""
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        self._issue(name, cn, [ExtendedKeyUsageOID.SERVER_AUTH], sans)

    def issue_user(self, name: str, user: str, groups: Iterable[str]) -> ClientCert:
        """A client certificate naming a Kubernetes user (CN) and its groups (O)."""
        self._issue(name, user, [ExtendedKeyUsageOID.CLIENT_AUTH], [], orgs=groups)
        return self.client(name)
