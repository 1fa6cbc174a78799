"""The one write path of a podnet cluster, and the Kubernetes API served over it.

Every writer of Kubernetes objects (the CLI, the lab's seeding, the kubelet, the
controllers, the agents' Node status, the HTTP API) writes through `write.Writer`:
validation, admission (ClusterIPs, NodePorts, defaults), compare-and-swap, apply's
three-way merge and delete with cascade live here and nowhere else. Only podnet's
internal IPAM state (IPAMBlock, ServiceIPAllocation, NodePortAllocation) is written by
its allocators directly, with their own compare-and-swap.
"""
