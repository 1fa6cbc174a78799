"""The documented defaults and the lab's address plan, fixed in one place. Pure."""
from __future__ import annotations

POD_CIDR_V4 = "10.244.0.0/16"
POD_CIDR_V6 = "fd00:10:244::/56"
BLOCK_SIZE_V4 = 26
BLOCK_SIZE_V6 = 122
SERVICE_CIDR_V4 = "10.96.0.0/12"
SERVICE_CIDR_V6 = "fd00:10:96::/112"
DNS_SERVICE_IP_V4 = "10.96.0.10"
DNS_SERVICE_IP_V6 = "fd00:10:96::a"
CLUSTER_DOMAIN = "cluster.local"
POD_GATEWAY_V4 = "169.254.1.1"
NODE_PORT_RANGE = (30000, 32767)
# The Kubernetes API server's port on the control-plane node (kubeadm's; lab/apiserver.py).
API_SERVER_PORT = 6443
# How often a node's agent writes its heartbeat into its Node's status (seconds).
AGENT_HEARTBEAT_EVERY = 10.0

# The lab (all inside the lab's own namespaces)
UNDERLAY_V4 = "198.18.0.0/24"
UNDERLAY_V6 = "fd00:198:18::/64"
OUTSIDE_V4 = "203.0.113.0/24"
OUTSIDE_V6 = "fd00:203:113::/64"
# Network namespace prefixes, disjoint so that no one's cleanup can take another's:
# a lab's are `pn-<lab>-<role>` (lab/topology.py), tests' `pnt-<tag>-<random id>`,
# benches' `pnb-<tag>-<random id>`; neither of the last two begins with `pn-`.
LAB_PREFIX = "pn-"
TEST_PREFIX = "pnt-"
BENCH_PREFIX = "pnb-"
# Where the lab's kubelet records a pod's network namespace (the pod's sandbox)
NETNS_ANNOTATION = "podnet.io/netns"
# podnet's route protocol number: unnamed in /etc/iproute2/rt_protos (188 would be ospf,
# 186 bgp, 42 babel), so a real node's routing daemons never claim our routes or we theirs.
ROUTE_PROTO = 201
