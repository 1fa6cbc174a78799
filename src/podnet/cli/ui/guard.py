"""Who may talk to the web view, decided purely from a request's facts (no I/O).

The server binds 127.0.0.1 only, and still checks every request, because binding is not
the only way in:
- the peer must be a loopback address (a listener moved to another address by mistake,
  or a proxy in front, must not open the lab to the network);
- the Host header must name the listener as a loopback name (`127.0.0.1:PORT`,
  `localhost:PORT`, `[::1]:PORT`): a page of another site whose DNS name was rebound to
  127.0.0.1 sends its own name as Host and is refused (DNS rebinding);
- an Origin header, when present, must be that same loopback origin (another site's
  script may send requests to 127.0.0.1, but its Origin gives it away);
- every request must carry the per-run access key: the URL `podnet ui` prints (to the
  root user who ran it) has it as `?key=`, and the server hands it back as an HttpOnly,
  SameSite=Strict cookie, which the page's own requests then carry. A loopback listener
  is reachable by every local user, not only by root; without the key they get nothing
  (not the page, so not its token either) - as Jupyter's token protects its server;
- a POST (the actions that send real packets: probe, a confirmed trace) must also carry
  the per-run token the page embeds (X-Podnet-Token), which another site cannot read
  (CSRF). GETs change nothing (the server has no GET handler that writes).
"""
from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
TOKEN_HEADER = "X-Podnet-Token"
KEY_PARAM = "key"  # in the printed URL
KEY_COOKIE = "podnet-ui-key"


class Refused(Exception):
    """The request is refused: `status` is the HTTP code, the message says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Request:
    """The facts of one request the checks read."""
    method: str
    peer: str | None  # the peer's address as the socket reports it
    host: str | None  # the Host header
    origin: str | None  # the Origin header
    token: str | None  # the X-Podnet-Token header
    key: str | None = None  # the access key: the `key` query parameter, else the cookie


def is_loopback(peer: str | None) -> bool:
    if not peer:
        return False
    try:
        a = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    return a.is_loopback


def allowed_hosts(port: int) -> frozenset[str]:
    return frozenset(f"{n}:{port}" for n in LOOPBACK_NAMES)


def _same(a: str | None, b: str) -> bool:
    return hmac.compare_digest((a or "").encode(), b.encode())


def check(req: Request, port: int, token: str, key: str) -> None:
    """Raise Refused unless the request may be served."""
    if not is_loopback(req.peer):
        raise Refused(403, f"only loopback clients are served (peer {req.peer})")
    hosts = allowed_hosts(port)
    if (req.host or "").lower() not in hosts:
        raise Refused(421, f"Host {req.host!r} is not this server's (use http://127.0.0.1:{port}/)")
    if req.origin is not None and req.origin.lower() not in {f"http://{h}" for h in hosts}:
        raise Refused(403, f"requests from origin {req.origin!r} are refused")
    if not _same(req.key, key):
        raise Refused(401, "open the address `podnet ui` printed: it carries the access key (?key=...)")
    if req.method not in ("GET", "HEAD", "POST"):
        raise Refused(405, f"method {req.method} is not allowed")
    if req.method == "POST" and not _same(req.token, token):
        raise Refused(403, f"a POST needs the page's token ({TOKEN_HEADER})")
