"""`kubectl auth can-i` and `kubectl auth whoami`: the requester asks about itself. Pure.

SelfSubjectAccessReview (authorization.k8s.io/v1) answers whether the authorization
table (auth.py) lets the requester do a verb on a resource; SelfSubjectReview
(authentication.k8s.io/v1) says who the server thinks the requester is. Neither is
stored: each create is answered (201) with the object and its status.
"""
from __future__ import annotations

from typing import Any

from podnet.apiserver import auth
from podnet.apiserver.resources import ApiResource

KINDS = ("SelfSubjectAccessReview", "SelfSubjectReview")


def answer(ident: auth.Identity, res: ApiResource, body: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if k in ("spec", "metadata")}
    out.update(apiVersion=res.api_version, kind=res.kind)
    out.setdefault("metadata", {})
    if res.kind == "SelfSubjectReview":
        out["status"] = {"userInfo": {"username": ident.user, "groups": list(ident.groups)}}
        return out
    spec: dict[str, Any] = body["spec"] if isinstance(body.get("spec"), dict) else {}
    ra = spec.get("resourceAttributes")
    if isinstance(ra, dict):
        ok = auth.allowed(ident, str(ra.get("verb") or ""), str(ra.get("group") or ""),
                          str(ra.get("resource") or ""), str(ra.get("subresource") or ""),
                          str(ra.get("name") or ""))
    else:
        path = str((spec.get("nonResourceAttributes") or {}).get("path") or "")
        ok = path in auth.PUBLIC_PATHS or (not ident.anonymous and path.startswith(auth.DISCOVERY_PREFIXES))
    out["status"] = {"allowed": ok, "reason": "the podnet authorization table" + ("" if ok else " says no")}
    return out
