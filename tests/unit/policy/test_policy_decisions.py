"""What podnet decides where Kubernetes leaves the choice open (docs/design/policy.md)."""
from __future__ import annotations

from podnet.api.objects import IPPool, Node
from podnet.calc.model import ClusterState
from podnet.calc.nat import nat_plan
from podnet.calc.policy.predicate import allowed, policies_for_pod
from podnet.calc.policy.table import e2e_model
from policy_cases import make_policy

DENY_X = make_policy("x", "deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
NODE = Node({"apiVersion": "podnet.io/v1", "kind": "Node", "metadata": {"name": "node-1"},
             "status": {"addresses": [{"type": "InternalIP", "address": "198.18.0.11"}]}})


def _st(*extra):
    return ClusterState.from_objects(e2e_model() + [NODE, *extra], node_name="node-1")


def _pod(st, ns, name):
    return st.get("Pod", ns, name)


def test_node_to_its_own_pods_is_always_allowed_both_ways():
    st = _st(DENY_X)
    xa = _pod(st, "x", "a")
    v = allowed(st, "198.18.0.11", xa, 80)
    assert v.allowed and "own node" in v.ingress.reason
    assert allowed(st, xa, "198.18.0.11", 10250).allowed


def test_another_nodes_address_is_judged_like_any_address():
    assert not allowed(_st(DENY_X), "198.18.0.12", _pod(_st(), "x", "a"), 80).allowed


def test_a_pod_to_itself_is_allowed():
    st = _st(DENY_X)
    assert allowed(st, _pod(st, "x", "a"), _pod(st, "x", "a"), 80).allowed


def test_ipblock_matches_pod_addresses():
    np_ = make_policy("x", "b", {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.0.5/32"}}]}]})
    st = _st(np_)
    v = allowed(st, _pod(st, "y", "b"), _pod(st, "x", "a"), 80)
    assert v.allowed and v.ingress.rule.name == "x/b/ingress/0"


def test_host_network_pods_are_not_selected():
    st = _st(DENY_X)
    hn = _pod(st, "x", "b")
    hn = hn.with_spec({**hn.spec, "hostNetwork": True})
    st.put(hn)
    assert policies_for_pod(st, hn) == {"ingress": [], "egress": []}


def test_verdict_names_the_deciding_rule_and_isolating_policies():
    allow = make_policy("x", "from-y", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]})
    st = _st(DENY_X, allow)
    v = allowed(st, _pod(st, "y", "a"), _pod(st, "x", "a"), 80)
    assert v.allowed and v.ingress.rule.name == "x/from-y/ingress/0"
    assert v.ingress.policies == ("x/deny", "x/from-y")
    v = allowed(st, _pod(st, "z", "a"), _pod(st, "x", "a"), 80)
    assert not v.allowed and "x/deny" in v.reason


def _pool(name, cidr, nat):
    return IPPool({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": name},
                   "spec": {"cidr": cidr, "natOutgoing": nat}})


def test_nat_outgoing_both_families():
    plan = nat_plan(ClusterState.from_objects([
        _pool("v4", "10.244.0.0/16", True), _pool("v6", "fd00:10:244::/56", True),
        _pool("plain", "10.250.0.0/16", False)]))
    assert plan.masquerades("10.244.0.5", "203.0.113.10")
    assert plan.masquerades("fd00:10:244::5", "fd00:203:113::10")
    assert not plan.masquerades("10.244.0.5", "10.250.0.7")  # another pool: pod to pod, no NAT
    assert not plan.masquerades("10.244.0.5", "10.96.0.10")  # service CIDR
    assert not plan.masquerades("fd00:10:244::5", "fd00:10:96::a")
    assert not plan.masquerades("10.250.0.7", "203.0.113.10")  # natOutgoing false keeps the pod IP
    assert plan.cluster[4] == ("10.96.0.0/12", "10.244.0.0/16", "10.250.0.0/16")


def test_nat_skips_a_pool_with_a_bad_cidr():
    plan = nat_plan(ClusterState.from_objects([_pool("bad", "10.244.0.0/33", True)]))
    assert plan.masquerade[4] == ()


def test_host_veth_name_matches_what_podnet_cni_creates():
    from podnet.calc.policy.compile import host_iface
    from podnet.dataplane.net.podwire import host_ifname
    from podnet.lab.network import IFNAME
    pod = _st().get("Pod", "x", "a")
    assert host_iface(pod) == ""  # not wired: not in the anti-spoofing sets
    wired = pod.with_metadata(uid="0f6c2a1e-77aa-4b7e-9d3c-1234567890ab",
                              annotations={"podnet.io/netns": "pn-lab-p0f6c2a1e77"})
    assert host_iface(wired) == host_ifname("0f6c2a1e-77aa-4b7e-9d3c-1234567890ab", IFNAME)


def test_describe_pod_lists_isolating_policies_and_what_they_allow():
    from podnet.calc.policy.describe import describe_pod
    allow = make_policy("x", "from-y", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{
        "from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}, {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
        "ports": [{"port": 80}, {"port": "serve-81-tcp"}, {"port": 1000, "endPort": 1010}]}]})
    st = _st(DENY_X, allow)
    assert describe_pod(st, st.get("Pod", "x", "a")) == [
        "Ingress: isolated by x/deny, x/from-y",
        "  x/deny: allows nothing",
        "  x/from-y rule 0: from pods in namespaces ns=y; 10.0.0.0/8 except 10.1.0.0/16; "
        "ports TCP/80, TCP/serve-81-tcp (81), TCP/1000-1010",
        "Egress: isolated by x/deny",
        "  x/deny: allows nothing",
    ]
    assert describe_pod(st, st.get("Pod", "y", "a")) == [
        "Ingress: not isolated (everything allowed)", "Egress: not isolated (everything allowed)"]


def test_malformed_objects_never_stop_the_policy_role():
    """Validation keeps these out of the store; if they get in anyway, the agent keeps
    enforcing everything else, and the broken parts match nothing, as in the predicate."""
    from podnet.agent.policy_role import PolicyRole
    from podnet.calc.policy.compile import compile_policies, evaluate
    bad_parts = make_policy("x", "bad-parts", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [
        {"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}, {"podSelector": {"matchLabels": {"pod": "b"}}}],
         "ports": [{"port": 70000}, {"protocol": "ICMP", "port": 80}, {"port": 80, "endPort": 99999}]}]})
    bad_selector = make_policy("y", "bad-selector", {"podSelector": {"matchExpressions": [
        {"key": "pod", "operator": "Near", "values": ["a"]}]}, "policyTypes": ["Ingress"]})
    st = _st(bad_parts, bad_selector)
    xa, xb, xc = (st.get("Pod", "x", n) for n in "abc")
    assert allowed(st, xb, xa, 80).allowed and allowed(st, xb, xa, 65535).allowed
    assert not allowed(st, xc, xa, 80).allowed
    comp = compile_policies(st)
    assert comp.errors and "y/bad-selector" in comp.errors[0]
    assert evaluate(comp, "10.244.0.2", "10.244.0.1", 80, "TCP")
    assert not evaluate(comp, "10.244.0.3", "10.244.0.1", 80, "TCP")
    role = PolicyRole("node-1")
    script = role.nft_fragment(st, None)
    assert "pol/x/bad-parts/in" in script and "tcp . 80-65535" in script
    assert not any("icmp" in line for line in script.splitlines() if "pol/x/bad-parts" in line)
