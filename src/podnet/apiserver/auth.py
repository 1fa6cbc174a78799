"""Who is asking, and may they: authentication and the authorization table. Pure.

Authentication, as kube-apiserver's: a verified TLS client certificate names the user
(CN) and groups (O); otherwise `Authorization: Bearer <token>` is looked up in the static
token file (`token,user,uid,"group1,group2"`, kube-apiserver's --token-auth-file format),
or checked as a service account token the server issued (sa_tokens.py).
Anything else is anonymous, and anonymous gets 401 except for the public info paths
(/version, /healthz, /livez, /readyz), as kube-apiserver's system:public-info-viewer.

Authorization, a table:
- `system:masters`: everything.
- `system:nodes` (user `system:node:<name>`): read everything; create and write its own
  Node (and its status; a create names the Node in its body, so `node_restriction`
  checks that once the body is read, as kube-apiserver's NodeRestriction admission does),
  Pod status and Pod deletion (what a kubelet writes), and IPAM blocks (what the node's
  CNI IPAM writes, as Calico lets its nodes write theirs). Nothing else: no Service,
  NetworkPolicy, Deployment, IPPool, nor another node's Node.
- `system:serviceaccounts`: read everything.
- any other authenticated user: discovery only.
"""
from __future__ import annotations

import csv
import hmac
import io
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from podnet.apiserver.resources import PODNET_GROUP
from podnet.apiserver.status import ApiStatus

PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")
DISCOVERY_PREFIXES = ("/api", "/apis", "/openapi", "/version")
READ = ("get", "list", "watch")
MASTERS, NODES, SERVICE_ACCOUNTS = "system:masters", "system:nodes", "system:serviceaccounts"
NODE_PREFIX = "system:node:"


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...] = ()

    @property
    def anonymous(self) -> bool:
        return self.user == "system:anonymous"


ANONYMOUS = Identity("system:anonymous", ("system:unauthenticated",))


class TokenTable:
    """The static token file: token -> Identity (compared in constant time)."""

    def __init__(self, text: str = ""):
        self.rows: list[tuple[str, Identity]] = []
        for row in csv.reader(io.StringIO(text)):
            if len(row) >= 2 and row[0].strip() and not row[0].startswith("#"):
                groups = tuple(g.strip() for g in (row[3] if len(row) > 3 else "").split(",") if g.strip())
                self.rows.append((row[0].strip(), Identity(row[1].strip(), groups)))

    def lookup(self, token: str) -> Identity | None:
        found = None
        for t, ident in self.rows:
            if hmac.compare_digest(t.encode(), token.encode()):
                found = ident
        return found


def from_peercert(peercert: Mapping[str, Any] | None) -> Identity | None:
    """The identity of a verified client certificate (ssl's getpeercert() form)."""
    if not peercert or not peercert.get("subject"):
        return None
    cn, orgs = "", []
    for rdn in peercert["subject"]:
        for k, v in rdn:
            if k == "commonName":
                cn = v
            elif k == "organizationName":
                orgs.append(v)
    return Identity(cn, tuple(orgs)) if cn else None


def authenticate(peercert: Mapping[str, Any] | None, authorization: str | None,
                 tokens: TokenTable, jwt: Callable[[str], Identity | None] | None = None) -> Identity:
    """`jwt`: checks a service account token (sa_tokens.verify with the server's key)."""
    ident = from_peercert(peercert)
    if ident is not None:
        return ident
    if authorization and authorization[:7].lower() == "bearer ":
        tok = authorization[7:].strip()
        found = tokens.lookup(tok) or (jwt(tok) if jwt is not None and tok.count(".") == 2 else None)
        if found is not None:
            return found
    return ANONYMOUS


def unauthorized() -> ApiStatus:
    return ApiStatus(401, "Unauthorized", "Unauthorized")


def check_path(ident: Identity, path: str) -> None:
    """Non-resource paths: public info for all; discovery for every authenticated user."""
    if path in PUBLIC_PATHS or path.rstrip("/") in PUBLIC_PATHS:
        return
    if ident.anonymous:
        raise unauthorized()


def allowed(ident: Identity, verb: str, group: str, plural: str, sub: str, name: str) -> bool:
    if MASTERS in ident.groups:
        return True
    if verb in READ and (NODES in ident.groups or SERVICE_ACCOUNTS in ident.groups):
        return True
    if NODES in ident.groups and ident.user.startswith(NODE_PREFIX) and group == "":
        node = ident.user[len(NODE_PREFIX):]
        if plural == "nodes" and verb in ("create", "update", "patch") and (
                name == node or (verb == "create" and not name and not sub)):
            return True
        if plural == "pods" and sub == "status" and verb in ("update", "patch"):
            return True
        if plural == "pods" and not sub and verb == "delete":
            return True
    if NODES in ident.groups and ident.user.startswith(NODE_PREFIX) and group == PODNET_GROUP:
        return plural == "ipamblocks" and verb in ("create", "update", "patch", "delete")
    return False


def node_restriction(ident: Identity, plural: str, verb: str, body: Mapping[str, Any]) -> None:
    """A node creates only its own Node: the name is in the body of the POST, which the
    table above (URL only) cannot see. Raises 403 otherwise."""
    if verb != "create" or plural != "nodes" or MASTERS in ident.groups or not ident.user.startswith(NODE_PREFIX):
        return
    node = ident.user[len(NODE_PREFIX):]
    name = str((body.get("metadata") or {}).get("name") or "")
    if name != node:
        raise ApiStatus(403, f'nodes "{name}" is forbidden: node "{node}" is not allowed to modify node "{name}"',
                        "Forbidden", {"name": name, "kind": "nodes"})


def check(ident: Identity, verb: str, group: str, plural: str, sub: str, name: str,
          namespace: str) -> None:
    """Raises 401 for anonymous, 403 (kube-apiserver's message) when the table says no."""
    if ident.anonymous:
        raise unauthorized()
    if allowed(ident, verb, group, plural, sub, name):
        return
    res = f"{plural}/{sub}" if sub else plural
    what = f'{res} "{name}"' if name else res
    where = f' in the namespace "{namespace}"' if namespace else ""
    scope = ' at the cluster scope' if not namespace else ""
    raise ApiStatus(403, f'{what} is forbidden: User "{ident.user}" cannot {verb} resource '
                         f'"{res}" in API group "{group}"{where}{scope}', "Forbidden",
                    {"name": name, "kind": plural, **({"group": group} if group else {})})
