"""Service account tokens: JWTs the API server issues for a pod and checks on every request.

Like Kubernetes' bound service account tokens (what the kubelet mounts at
/var/run/secrets/kubernetes.io/serviceaccount/token): `sub` system:serviceaccount:<ns>:<sa>,
the pod's name and uid under `kubernetes.io`, an expiry (TTL). Signed HS256 with the
cluster's service-account key (a secret only the API server reads); a token whose
signature, audience or expiry is wrong authenticates nobody. Pure.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from podnet.apiserver.auth import Identity

ISSUER = "https://kubernetes.default.svc.cluster.local"
TTL = 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(key: bytes, namespace: str, sa: str, pod: str = "", pod_uid: str = "",
          now: float | None = None, ttl: int = TTL) -> str:
    t = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"iss": ISSUER, "aud": [ISSUER], "iat": t, "nbf": t, "exp": t + ttl,
                              "sub": f"system:serviceaccount:{namespace}:{sa}",
                              "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": sa},
                                                **({"pod": {"name": pod, "uid": pod_uid}} if pod else {})}}
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def verify(key: bytes, token: str, now: float | None = None) -> Identity | None:
    parts = token.split(".")
    if len(parts) != 3 or not key:
        return None
    want = hmac.new(key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(want, _unb64(parts[2])):
            return None
        head, claims = json.loads(_unb64(parts[0])), json.loads(_unb64(parts[1]))
    except (ValueError, TypeError):
        return None
    t = time.time() if now is None else now
    if head.get("alg") != "HS256" or ISSUER not in (claims.get("aud") or []):
        return None
    if not (claims.get("nbf", 0) - 60 <= t < claims.get("exp", 0)):
        return None
    sub = str(claims.get("sub") or "")
    if not sub.startswith("system:serviceaccount:") or sub.count(":") != 3:
        return None
    ns = sub.split(":")[2]
    return Identity(sub, ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"))
