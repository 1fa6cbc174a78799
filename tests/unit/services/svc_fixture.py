"""The fixed set of services the golden files and the tracer tests render: affinity,
NodePort, no endpoints, dual stack, SCTP, UDP, named ports, headless, ExternalName."""
from __future__ import annotations

from podnet.calc.services import ServiceTable, build_table
from builders import endpoint, make_service, make_slice

NODE_IPS = ("198.18.0.11", "fd00:198:18::11")
POD_CIDRS = ("10.244.0.0/16", "fd00:10:244::/56")  # the IP pools


def _dual(d):
    d["spec"].update(clusterIPs=["10.96.0.30", "fd00:10:96::30"], ipFamilies=["IPv4", "IPv6"],
                     ipFamilyPolicy="RequireDualStack")


def _affinity(d):
    d["spec"].update(sessionAffinity="ClientIP",
                     sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})


def _nodeport(port):
    def m(d):
        d["spec"]["type"] = "NodePort"
        d["spec"]["ports"][0]["nodePort"] = port
    return m


def objects():
    svcs = [
        make_service("default", "web", ip="10.96.0.20"),
        make_service("default", "sticky", _affinity, ip="10.96.0.21"),
        make_service("default", "np", _nodeport(30080), ip="10.96.0.22"),
        make_service("default", "empty", _nodeport(30081), ip="10.96.0.23"),
        make_service("default", "dual", _dual, ip="10.96.0.30"),
        make_service("default", "sctp", ip="10.96.0.24",
                     ports=[{"name": "assoc", "port": 9999, "protocol": "SCTP", "targetPort": 9999}]),
        make_service("kube-system", "kube-dns", ip="10.96.0.10",
                     ports=[{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": "dns-tcp"}]),
        make_service("default", "extip", lambda d: d["spec"].update(externalIPs=["192.0.2.50", "2001:db8::50"]),
                     ip="10.96.0.25"),
        make_service("default", "headless", ip="None"),
        make_service("default", "ext", lambda d: d["spec"].update(type="ExternalName", externalName="example.org")),
    ]
    slices = [
        make_slice("default", "web", [endpoint("10.244.1.2"), endpoint("10.244.1.3"), endpoint("10.244.2.2"),
                                      endpoint("10.244.2.9", ready=False)]),
        make_slice("default", "sticky", [endpoint("10.244.1.4"), endpoint("10.244.2.4")]),
        make_slice("default", "np", [endpoint("10.244.1.5"), endpoint("10.244.2.5")]),
        make_slice("default", "empty", [endpoint("10.244.1.6", ready=False)]),
        make_slice("default", "dual", [endpoint("10.244.1.7"), endpoint("10.244.2.7")]),
        make_slice("default", "dual", [endpoint("fd00:10:244:1::7"), endpoint("fd00:10:244:2::7")],
                   family="IPv6"),
        make_slice("default", "sctp", [endpoint("10.244.1.8")],
                   ports=[{"name": "assoc", "port": 9999, "protocol": "SCTP"}]),
        make_slice("kube-system", "kube-dns", [endpoint("10.244.1.9"), endpoint("10.244.2.9")],
                   ports=[{"name": "dns", "port": 5353, "protocol": "UDP"},
                          {"name": "dns-tcp", "port": 5353, "protocol": "TCP"}]),
        make_slice("default", "headless", [endpoint("10.244.1.10")]),
        make_slice("default", "extip", [endpoint("10.244.1.11"), endpoint("10.244.2.11")]),
    ]
    return svcs, slices


def table() -> ServiceTable:
    svcs, slices = objects()
    return build_table(svcs, slices, NODE_IPS, pod_cidrs=POD_CIDRS)


# ---- traffic policies: this node is node-1 -----------------------------------------------
NODE = "node-1"


def _policy(internal: str = "Cluster", external: str = "Cluster"):
    def m(d):
        d["spec"].update(internalTrafficPolicy=internal)
        if d["spec"].get("type") == "NodePort":
            d["spec"].update(externalTrafficPolicy=external)
    return m


def _external_local(ip: str):
    """A ClusterIP Service with an external IP and externalTrafficPolicy Local."""
    def m(d):
        d["spec"].update(externalIPs=[ip], externalTrafficPolicy="Local")
    return m


def _load_balancer(ingress: str, policy: str, ranges: list[str]):
    """type LoadBalancer, its ingress IP in status, source ranges, no nodePort."""
    def m(d):
        d["spec"].update(type="LoadBalancer", externalTrafficPolicy=policy, loadBalancerSourceRanges=ranges,
                         allocateLoadBalancerNodePorts=False)
        d["status"] = {"loadBalancer": {"ingress": [{"ip": ingress}]}}
    return m


def _all(*muts):
    def m(d):
        for f in muts:
            f(d)
    return m


def local_objects():
    """internalTrafficPolicy/externalTrafficPolicy Local with and without endpoints on node-1."""
    svcs = [
        make_service("default", "itp", _policy("Local"), ip="10.96.1.1"),
        make_service("default", "itp-none", _policy("Local"), ip="10.96.1.2"),
        make_service("default", "itp-empty", _policy("Local"), ip="10.96.1.3"),
        make_service("default", "etp", _all(_nodeport(30090), _policy(external="Local")), ip="10.96.1.4"),
        make_service("default", "etp-none", _all(_nodeport(30091), _policy(external="Local")), ip="10.96.1.5"),
        make_service("default", "both", _all(_nodeport(30092), _affinity, _policy("Local", "Local")),
                     ip="10.96.1.6"),
        make_service("default", "itp-np", _all(_nodeport(30093), _policy("Local")), ip="10.96.1.7"),
        make_service("default", "itp6", _all(_dual, _policy("Local")), ip="10.96.1.8"),
        make_service("default", "etp-ext", _external_local("192.0.2.51"), ip="10.96.1.9"),
        make_service("default", "etp-ext-none", _external_local("192.0.2.52"), ip="10.96.1.10"),
        make_service("default", "lb-fw", _load_balancer("198.51.100.53", "Local", ["203.0.113.0/25"]),
                     ip="10.96.1.11"),
    ]
    slices = [
        make_slice("default", "itp", [endpoint("10.244.2.20", node="node-2"), endpoint("10.244.1.20")]),
        make_slice("default", "itp-none", [endpoint("10.244.2.21", node="node-2")]),
        make_slice("default", "itp-empty", []),
        make_slice("default", "etp", [endpoint("10.244.1.22"), endpoint("10.244.2.22", node="node-2")]),
        make_slice("default", "etp-none", [endpoint("10.244.2.23", node="node-2")]),
        make_slice("default", "both", [endpoint("10.244.1.24"), endpoint("10.244.2.24", node="node-2"),
                                       endpoint("10.244.3.24")]),
        make_slice("default", "itp-np", [endpoint("10.244.1.25"), endpoint("10.244.2.25", node="node-2")]),
        make_slice("default", "itp6", [endpoint("10.244.2.26", node="node-2"), endpoint("10.244.1.26")]),
        make_slice("default", "itp6", [endpoint("fd00:10:244:2::26", node="node-2"),
                                       endpoint("fd00:10:244:1::26")], family="IPv6"),
        make_slice("default", "etp-ext", [endpoint("10.244.1.27"), endpoint("10.244.2.27", node="node-2")]),
        make_slice("default", "etp-ext-none", [endpoint("10.244.2.28", node="node-2")]),
        make_slice("default", "lb-fw", [endpoint("10.244.1.29"), endpoint("10.244.2.29", node="node-2")]),
    ]
    return svcs, slices


def local_table() -> ServiceTable:
    svcs, slices = local_objects()
    return build_table(svcs, slices, NODE_IPS, NODE, POD_CIDRS)
