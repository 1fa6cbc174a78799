"""hypothesis strategies: random NetworkPolicies over the e2e model (x,y,z / a,b,c)."""
from __future__ import annotations

from hypothesis import strategies as st

from podnet.api.objects import NetworkPolicy

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")


def _label_sel(key: str, values: tuple[str, ...]) -> st.SearchStrategy[dict]:
    return st.one_of(
        st.just({}),
        st.sampled_from(values).map(lambda v: {"matchLabels": {key: v}}),
        st.tuples(st.sampled_from(("In", "NotIn")), st.lists(st.sampled_from(values), min_size=1,
                                                              max_size=2, unique=True))
        .map(lambda t: {"matchExpressions": [{"key": key, "operator": t[0], "values": t[1]}]}),
        st.sampled_from(("Exists", "DoesNotExist"))
        .map(lambda op: {"matchExpressions": [{"key": key, "operator": op}]}),
    )


CIDRS = ("10.244.0.0/24", "10.244.0.0/29", "10.244.0.4/30", "10.244.0.2/32", "0.0.0.0/0",
         "fd00:10:244::/64", "fd00:10:244::4/126")
EXCEPTS = {"10.244.0.0/24": ["10.244.0.4/30", "10.244.0.8/31", "10.244.0.1/32"],
           "10.244.0.0/29": ["10.244.0.2/31"], "0.0.0.0/0": ["10.244.0.0/30", "203.0.113.0/24"],
           "fd00:10:244::/64": ["fd00:10:244::8/125"]}


@st.composite
def ip_blocks(draw) -> dict:
    cidr = draw(st.sampled_from(CIDRS))
    ex = draw(st.lists(st.sampled_from(EXCEPTS.get(cidr, [])), max_size=2, unique=True)) if cidr in EXCEPTS else []
    return {"cidr": cidr, **({"except": ex} if ex else {})}


@st.composite
def peers(draw) -> dict:
    kind = draw(st.sampled_from(("pod", "ns", "both", "ip")))
    if kind == "ip":
        return {"ipBlock": draw(ip_blocks())}
    out = {}
    if kind in ("pod", "both"):
        out["podSelector"] = draw(_label_sel("pod", PODS))
    if kind in ("ns", "both"):
        out["namespaceSelector"] = draw(_label_sel("ns", NAMESPACES))
    return out


PORT_CHOICES = (
    {"port": 80}, {"port": 81}, {"port": 79, "endPort": 80}, {"port": 81, "endPort": 90},
    {"port": "serve-80-tcp"}, {"port": "serve-81-tcp"}, {"port": "serve-80-udp", "protocol": "UDP"},
    {"protocol": "UDP"}, {"protocol": "UDP", "port": 81}, {"protocol": "TCP"}, {"port": "no-such-port"},
)


@st.composite
def rules(draw, peer_key: str) -> dict:
    r: dict = {}
    if draw(st.booleans()):
        r[peer_key] = draw(st.lists(peers(), min_size=1, max_size=2))
    if draw(st.booleans()):
        r["ports"] = draw(st.lists(st.sampled_from(PORT_CHOICES), min_size=1, max_size=2))
    return r


@st.composite
def policies(draw, name: str = "p") -> NetworkPolicy:
    spec: dict = {"podSelector": draw(_label_sel("pod", PODS))}
    types = draw(st.sampled_from((None, ["Ingress"], ["Egress"], ["Ingress", "Egress"])))
    if types is not None:
        spec["policyTypes"] = types
    if types is None or "Ingress" in types:
        spec["ingress"] = draw(st.lists(rules("from"), max_size=2))
    if types is None or "Egress" in types:
        spec["egress"] = draw(st.lists(rules("to"), max_size=2))
    return NetworkPolicy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                          "metadata": {"name": name, "namespace": draw(st.sampled_from(NAMESPACES))},
                          "spec": spec})


@st.composite
def policy_sets(draw, max_size: int = 3) -> list[NetworkPolicy]:
    n = draw(st.integers(min_value=1, max_value=max_size))
    return [draw(policies(name=f"p{i}")) for i in range(n)]
