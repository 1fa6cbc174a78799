"""The cluster DNS add-on of a lab: its Deployment and the `kube-dns` Service, as manifests. Pure.

What kubeadm installs, with `podnet dns` in place of CoreDNS: 2 replicas in `kube-system`
labelled `k8s-app: kube-dns`, dnsPolicy Default (the DNS pods forward to the node's
resolvers, never to themselves), behind the `kube-dns` Service at 10.96.0.10 (and
fd00:10:96::a in dual stack) with ports dns/UDP 53 and dns-tcp/TCP 53. The lab seeds these
through `podnet.lab.up.addon_objects`.
"""
from __future__ import annotations

from typing import Any

from podnet.api import defaults

NAMESPACE = "kube-system"
LABELS = {"k8s-app": "kube-dns"}
REPLICAS = 2


def dns_args(dual_stack: bool) -> list[str]:
    args = ["dns", "--listen", "0.0.0.0", "--zone", defaults.CLUSTER_DOMAIN, "--ttl", "30",
            "--pods", "insecure"]
    return args + (["--listen", "::"] if dual_stack else [])


def lab_objects(dual_stack: bool) -> list[dict[str, Any]]:
    ips = [defaults.DNS_SERVICE_IP_V4] + ([defaults.DNS_SERVICE_IP_V6] if dual_stack else [])
    families = ["IPv4"] + (["IPv6"] if dual_stack else [])
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "podnet-dns", "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": dict(LABELS)},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {
                    "dnsPolicy": "Default",
                    "containers": [{
                        "name": "dns", "image": "podnet",
                        "command": ["podnet"], "args": dns_args(dual_stack),
                        "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                  {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}],
                    }],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": {
            "selector": dict(LABELS),
            "clusterIP": ips[0], "clusterIPs": ips, "ipFamilies": families,
            "ipFamilyPolicy": "PreferDualStack" if dual_stack else "SingleStack",
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                      {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}],
        },
    }
    return [deployment, service]
