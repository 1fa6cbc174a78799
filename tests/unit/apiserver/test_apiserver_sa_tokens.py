"""Service account tokens: issued for a pod, checked on every request (signature, audience,
expiry), and what they may do (read). Pure."""
from __future__ import annotations

from podnet.apiserver import auth, sa_tokens

KEY = b"k" * 32


def test_a_token_names_its_service_account():
    tok = sa_tokens.issue(KEY, "shop", "default", "web-1", "uid-1", now=1000)
    who = sa_tokens.verify(KEY, tok, now=1001)
    assert who.user == "system:serviceaccount:shop:default"
    assert "system:serviceaccounts:shop" in who.groups
    assert auth.allowed(who, "list", "", "pods", "", "") and not auth.allowed(who, "delete", "", "services", "", "web")
    assert auth.authenticate(None, f"Bearer {tok}", auth.TokenTable(""),
                             lambda t: sa_tokens.verify(KEY, t, now=1001)) == who


def test_wrong_key_tampering_and_expiry_authenticate_nobody():
    tok = sa_tokens.issue(KEY, "shop", "default", now=1000, ttl=60)
    assert sa_tokens.verify(b"x" * 32, tok, now=1001) is None
    head, body, sig = tok.split(".")
    forged = sa_tokens.issue(b"x" * 32, "kube-system", "admin", now=1000).split(".")[1]
    assert sa_tokens.verify(KEY, f"{head}.{forged}.{sig}", now=1001) is None
    assert sa_tokens.verify(KEY, tok, now=1061) is None
    assert sa_tokens.verify(KEY, "a.b", now=1001) is None and sa_tokens.verify(KEY, "a.b.c", now=1001) is None
    assert sa_tokens.verify(b"", tok, now=1001) is None
    assert auth.authenticate(None, "Bearer a.b.c", auth.TokenTable(""),
                             lambda t: sa_tokens.verify(KEY, t)).anonymous


def test_pod_environment_variables():
    from podnet.apiserver.exec_stream import PodEnv
    env = PodEnv("default", "tok", "CA", "10.96.0.1", 443).variables()
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["KUBERNETES_PORT"] == "tcp://10.96.0.1:443"
    assert "KUBERNETES_SERVICE_HOST" not in PodEnv("default").variables()
