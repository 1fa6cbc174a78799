"""deploy/podnet.yaml (issue 15 §3): each component's ClusterRole lets it read exactly the
kinds its code watches, and the DaemonSet runs the tested install step."""
from __future__ import annotations

from pathlib import Path

import yaml

from podnet.agent.nat_role import NatRole
from podnet.agent.policy_role import PolicyRole
from podnet.agent.routes_role import RoutesRole
from podnet.agent.service_proxy_role import ServiceProxyRole
from podnet.controllers.manager import IN_A_CLUSTER, READS
from podnet.datastore.kube_kinds import BY_KIND
from podnet.dns import source

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def docs() -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / "podnet.yaml").read_text()) if d]


def granted(role: str, verb: str) -> set[tuple[str, str]]:
    (cr,) = [d for d in docs() if d["kind"] == "ClusterRole" and d["metadata"]["name"] == role]
    return {(g, r) for rule in cr["rules"] if verb in rule["verbs"]
            for g in rule["apiGroups"] for r in rule["resources"]}


def needs(kinds) -> set[tuple[str, str]]:
    # the Kubernetes datastore's revision() lists namespaces: every informer reads them
    return {(BY_KIND[k].group, BY_KIND[k].plural) for k in (*kinds, "Namespace")}


def test_roles_read_exactly_what_the_code_watches():
    agent = {"Node", "IPAMBlock"} | {k for r in (NatRole, PolicyRole, RoutesRole, ServiceProxyRole)
                                     for k in r.kinds}
    assert granted("podnet-node", "watch") == needs(agent)
    assert granted("podnet-dns", "watch") == needs(source.KINDS)
    ctl = {k for name in IN_A_CLUSTER for k in READS[name]} | {"ServiceIPAllocation"}
    assert granted("podnet-controllers", "watch") == needs(ctl)
    (deployment,) = [d for d in docs() if d["kind"] == "Deployment" and d["metadata"]["name"] == "podnet-controllers"]
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:2] == ["podnet", "controllers"] and command[3].split(",") == list(IN_A_CLUSTER)


def test_writes_are_least_privilege():
    assert granted("podnet-dns", "update") == set() and granted("podnet-dns", "create") == set()
    # the agent patches its own part of its Node (agent/node_status.py), never PUTs it whole
    assert granted("podnet-node", "update") == set()
    assert granted("podnet-node", "patch") == {("", "nodes"), ("", "nodes/status")}
    assert not any(r == "endpointslices" for _, r in granted("podnet-controllers", "create"))
    assert granted("podnet-cni", "create") == {("podnet.io", "ipamblocks")}
    assert not any(r == "secrets" for role in ("podnet-node", "podnet-cni", "podnet-controllers", "podnet-dns")
                   for v in ("get", "list") for _, r in granted(role, v))


def test_daemonset_installs_with_the_tested_program_and_bindings_match():
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs()}
    pod = by[("DaemonSet", "podnet-node")]["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["serviceAccountName"] == "podnet-node"
    (init,) = pod["initContainers"]
    assert init["command"][:3] == ["python3", "-m", "podnet.cni.install"]
    mounts = {m["mountPath"] for m in init["volumeMounts"]}
    assert {"/host/opt/cni/bin", "/host/etc/cni/net.d"} <= mounts
    daemon = [c for c in pod["containers"] if c["name"] == "cni-daemon"][0]
    assert daemon["command"][-1] == "kubernetes://?kubeconfig=/etc/cni/net.d/podnet-kubeconfig"
    for sa in ("podnet-node", "podnet-cni", "podnet-controllers", "podnet-dns"):
        b = by[("ClusterRoleBinding", sa)]
        assert b["roleRef"]["name"] == sa and b["subjects"][0]["name"] == sa
        assert ("ServiceAccount", sa) in by
    assert by[("Service", "kube-dns")]["spec"]["selector"] == \
        by[("Deployment", "podnet-dns")]["spec"]["template"]["metadata"]["labels"]


def test_manifests_pass_the_kubernetes_openapi_schemas():
    """kubernetes-validate (pinned in the test extras): the schemas of Kubernetes 1.35,
    strict (an unknown field is an error), for podnet.yaml and crds.yaml alike."""
    import kubernetes_validate as kv
    for name in ("podnet.yaml", "crds.yaml"):
        for d in yaml.safe_load_all((DEPLOY / name).read_text()):
            if d:
                kv.validate(d, "1.35", strict=True)
    broken = docs()[-1]
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 7
    try:
        kv.validate(broken, "1.35", strict=True)
    except kv.ValidationError:
        return
    raise AssertionError("the validator let a broken Deployment through")
