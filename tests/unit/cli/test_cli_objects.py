"""`podnet apply/get/delete/describe` against a real SQLite store in a temp dir."""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from cli_helpers import run, stored, write
from podnet.api.defaults import SERVICE_CIDR_V4
from podnet.datastore.interface import open_datastore

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

WEB = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: podnet/serve, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, labels: {app: web}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"""


def test_apply_created_unchanged_configured(env, capsys):
    tmp, url = env
    f = write(tmp / "web.yaml", WEB)
    assert run(capsys, "apply", "-f", f) == (0, "deployment.apps/web created\nservice/web created\n", "")
    assert run(capsys, "apply", "-f", f) == (0, "deployment.apps/web unchanged\nservice/web unchanged\n", "")
    write(tmp / "web.yaml", WEB.replace("replicas: 3", "replicas: 5"))
    assert run(capsys, "apply", "-f", f) == (0, "deployment.apps/web configured\nservice/web unchanged\n", "")
    assert stored(url, "Deployment", "default", "web").spec["replicas"] == 5


def test_reapply_keeps_server_fields_and_drops_removed_fields(env, capsys):
    tmp, url = env
    f = write(tmp / "web.yaml", WEB)
    run(capsys, "apply", "-f", f)
    s = open_datastore(url)
    svc = s.get("Service", "default", "web")
    # what an allocator and a controller write
    spec = dict(svc.spec, clusterIP="10.96.0.20", clusterIPs=["10.96.0.20"], ipFamilies=["IPv4"])
    s.update(svc.with_spec(spec).with_status({"loadBalancer": {}}))
    uid = svc.uid
    s.close()
    write(tmp / "web.yaml", WEB.replace("selector: {app: web}", "selector: {app: web2}")
          .replace("metadata: {name: web, labels: {app: web}}\nspec:\n  selector",
                   "metadata: {name: web}\nspec:\n  selector"))
    rc, out, _ = run(capsys, "apply", "-f", f)
    assert rc == 0 and "service/web configured" in out
    svc = stored(url, "Service", "default", "web")
    assert svc.uid == uid
    assert svc.spec["clusterIP"] == "10.96.0.20" and svc.spec["ipFamilies"] == ["IPv4"]
    assert svc.spec["selector"] == {"app": "web2"}
    assert svc.status == {"loadBalancer": {}}
    assert "labels" not in svc.metadata  # the user removed them
    last = json.loads(svc.annotations["podnet.io/last-applied"])
    assert last["spec"]["selector"] == {"app": "web2"}


def test_nodeports_survive_reapply(env, capsys):
    tmp, url = env
    text = ("apiVersion: v1\nkind: Service\nmetadata: {name: np}\nspec:\n  type: NodePort\n"
            "  ports: [{port: 80}]\n")
    f = write(tmp / "np.yaml", text)
    run(capsys, "apply", "-f", f)
    s = open_datastore(url)
    svc = s.get("Service", "default", "np")
    s.update(svc.with_spec(dict(svc.spec, ports=[{"port": 80, "nodePort": 30080}])))
    s.close()
    write(tmp / "np.yaml", text + "  sessionAffinity: ClientIP\n")
    assert run(capsys, "apply", "-f", f)[1] == "service/np configured\n"
    assert stored(url, "Service", "default", "np").spec["ports"] == [{"port": 80, "nodePort": 30080}]


def test_bad_object_applies_nothing(env, capsys):
    tmp, url = env
    f = write(tmp / "web.yaml", WEB.replace("port: 80,", "port: 70000,"))
    rc, out, err = run(capsys, "apply", "-f", f)
    assert rc == 1 and out == ""
    assert err == (f"error: {f} doc 2 Service default/web: spec.ports[0].port: 70000 is not in 1..65535\n")
    assert run(capsys, "get", "deploy")[2] == "No resources found in default namespace.\n"


def test_malformed_yaml_is_one_line_no_traceback(env, capsys):
    tmp, _ = env
    f = write(tmp / "m.yaml", "kind: Pod\nmetadata:\n  name: [x\n")
    rc, out, err = run(capsys, "apply", "-f", f)
    assert rc == 1 and out == ""
    assert err.startswith(f"error: {f}:4:1: ") and err.count("\n") == 1 and "Traceback" not in err


def test_namespace_must_exist_unless_created_in_the_same_apply(env, capsys):
    tmp, _ = env
    app = "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: shop}\nspec: {ports: [{port: 80}]}\n"
    f = write(tmp / "app.yaml", app)
    rc, out, err = run(capsys, "apply", "-f", f)
    assert rc == 1
    assert err == (f'error: {f} doc 1 Service shop/s: namespace "shop" not found '
                   "(create it first, or in the same apply)\n")
    # namespace later in the same file: created first
    f2 = write(tmp / "both.yaml", app + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")
    assert run(capsys, "apply", "-f", f2) == (0, "namespace/shop created\nservice/s created\n", "")


def test_default_namespaces_exist(env, capsys):
    rc, out, _ = run(capsys, "get", "ns")
    assert rc == 0
    assert [line.split()[0] for line in out.splitlines()] == ["NAME", "default", "kube-system"]


def test_get_tables(env, capsys):
    tmp, url = env
    run(capsys, "apply", "-f", write(tmp / "web.yaml", WEB))
    rc, out, _ = run(capsys, "get", "svc")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    cells = lines[1].split()
    assert cells[:2] + cells[3:5] == ["web", "ClusterIP", "<none>", "80/TCP"]
    # admission allocated the cluster IP
    assert ipaddress.ip_address(cells[2]) in ipaddress.ip_network(SERVICE_CIDR_V4)
    # columns are aligned: every cell starts where its header starts
    assert lines[1].index("ClusterIP") == lines[0].index("TYPE")
    rc, out, _ = run(capsys, "get", "deployments", "-o", "wide")
    assert out.splitlines()[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE",
                                           "CONTAINERS", "IMAGES", "SELECTOR"]
    assert out.splitlines()[1].split()[:4] == ["web", "0/3", "0", "0"]
    rc, out, _ = run(capsys, "get", "svc", "-A")
    assert out.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert out.splitlines()[1].split()[:2] == ["default", "web"]


def test_get_pods_wide_and_selector(env, capsys):
    tmp, url = env
    pods = "".join(f"---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {n}, labels: {{app: {a}}}}}\n"
                   f"spec: {{nodeName: node-1, containers: [{{name: c, image: podnet/serve}}]}}\n"
                   for n, a in (("a", "web"), ("b", "db")))
    run(capsys, "apply", "-f", write(tmp / "pods.yaml", pods))
    s = open_datastore(url)
    p = s.get("Pod", "default", "a")
    s.update(p.with_status({"phase": "Running", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}],
                            "conditions": [{"type": "Ready", "status": "True"}]}))
    s.close()
    rc, out, _ = run(capsys, "get", "po", "-o", "wide")
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert rows[1][:4] + rows[1][5:] == ["a", "1/1", "Running", "0", "10.244.0.5", "node-1"]
    assert rows[2][:4] + rows[2][5:] == ["b", "0/1", "Pending", "0", "<none>", "node-1"]
    rc, out, _ = run(capsys, "get", "pods", "-l", "app=web", "-o", "name")
    assert out == "pod/a\n"
    rc, out, _ = run(capsys, "get", "pods", "-l", "app notin (web)", "-o", "name")
    assert out == "pod/b\n"


def test_get_output_yaml_json_name(env, capsys):
    tmp, _ = env
    run(capsys, "apply", "-f", write(tmp / "web.yaml", WEB))
    rc, out, _ = run(capsys, "get", "svc", "web", "-o", "yaml")
    obj = yaml.safe_load(out)
    assert obj["kind"] == "Service" and obj["metadata"]["name"] == "web"
    assert obj["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    assert obj["metadata"]["uid"] and obj["metadata"]["resourceVersion"]
    rc, out, _ = run(capsys, "get", "deploy", "-o", "json")
    lst = json.loads(out)
    assert lst["kind"] == "List" and [i["metadata"]["name"] for i in lst["items"]] == ["web"]
    assert run(capsys, "get", "services", "-o", "name")[1] == "service/web\n"


def test_get_missing_and_unknown(env, capsys):
    assert run(capsys, "get", "svc", "nope") == (1, "", 'error: services "nope" not found in namespace "default"\n')
    rc, out, err = run(capsys, "get", "widgets")
    assert rc == 1 and err.startswith('error: the server doesn\'t have a resource type "widgets"')
    assert run(capsys, "get", "svc", "-n", "kube-system")[2] == "No resources found in kube-system namespace.\n"
    assert run(capsys, "get", "ippools")[2] == "No resources found\n"


def test_usage_errors_exit_2(env, capsys):
    assert run(capsys, "get")[0] == 2
    assert run(capsys, "get", "svc", "-o", "table")[0] == 2
    assert run(capsys, "apply")[0] == 2


def test_delete_by_file_and_by_name(env, capsys):
    tmp, _ = env
    f = write(tmp / "web.yaml", WEB)
    run(capsys, "apply", "-f", f)
    assert run(capsys, "delete", "svc", "web") == (0, 'service "web" deleted\n', "")
    rc, out, err = run(capsys, "delete", "-f", f)
    assert rc == 1 and out == 'deployment.apps "web" deleted\n'
    assert err == 'error: services "web" not found\n'
    assert run(capsys, "delete", "-f", f, "--ignore-not-found")[0] == 0
    assert run(capsys, "get", "deploy")[2] == "No resources found in default namespace.\n"


def test_delete_namespace_takes_its_objects_and_default_is_protected(env, capsys):
    tmp, url = env
    f = write(tmp / "shop.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n"
              + WEB.replace("name: web,", "name: web, namespace: shop,"))
    run(capsys, "apply", "-f", f)
    assert run(capsys, "get", "svc", "-n", "shop", "-o", "name")[1] == "service/web\n"
    assert run(capsys, "delete", "ns", "shop") == (0, 'namespace "shop" deleted\n', "")
    assert run(capsys, "get", "svc", "-A", "-o", "name")[1] == ""
    assert run(capsys, "delete", "ns", "default") == (
        1, "", 'error: namespaces "default" is forbidden: this namespace may not be deleted\n')


def test_describe(env, capsys):
    tmp, _ = env
    run(capsys, "apply", "-f", write(tmp / "web.yaml", WEB))
    rc, out, _ = run(capsys, "describe", "svc", "web")
    assert rc == 0
    assert "Name:             web\nNamespace:        default\nLabels:           app=web\n" in out
    assert "Type:             ClusterIP\n" in out and "Port:             http  80/TCP\n" in out
    from podnet.cli import describe as d
    def first(store, obj):
        return ["Extra:            from a plugin"]
    d.DESCRIBERS["Service"] = first
    d.DESCRIBERS.setdefault("Service", lambda store, obj: ["More:             from another"])
    d.DESCRIBERS["Service"] = first  # registering again changes nothing
    try:
        out = run(capsys, "describe", "service", "web")[1]
        assert out.endswith("Extra:            from a plugin\nMore:             from another\n")
    finally:
        d.DESCRIBERS.pop("Service")


def test_examples_apply_cleanly(env, capsys):
    files = [str(EXAMPLES / n) for n in ("namespaces.yaml", "ippool.yaml", "web.yaml", "netpol.yaml",
                                         "fixed-ip-pod.yaml")]
    rc, out, err = run(capsys, "apply", *sum((["-f", f] for f in files), []))
    assert (rc, err) == (0, "")
    assert out == ("namespace/shop created\nnamespace/monitoring created\n"
                   "ippool.podnet.io/default-ipv4-ippool created\nippool.podnet.io/default-ipv6-ippool created\n"
                   "deployment.apps/web created\nservice/web created\n"
                   "networkpolicy.networking.k8s.io/web-allow-clients created\npod/fixed-ip created\n")
    rc, out, _ = run(capsys, "get", "ippools")
    rows = [line.split() for line in out.splitlines()]
    assert rows[0][:5] == ["NAME", "CIDR", "BLOCKSIZE", "NAT", "DISABLED"]
    assert rows[1][:5] == ["default-ipv4-ippool", "10.244.0.0/16", "26", "true", "false"]
    rc, out, err = run(capsys, "apply", "-f", str(EXAMPLES / "loadbalancer.yaml"))
    assert (rc, err) == (0, "")
    assert out == ("ippool.podnet.io/lb-ipv4 created\nippool.podnet.io/lb-ipv6 created\nservice/web-lb created\n")
    rc, out, _ = run(capsys, "get", "svc", "web-lb")
    assert out.splitlines()[1].split()[1:4:2] == ["LoadBalancer", "<pending>"]  # no controller runs here


def test_console_script_from_stdin(env):
    tmp, url = env
    exe = Path(sys.executable).parent / "podnet"
    cp = subprocess.run([str(exe), "apply", "-f", "-"], input=WEB, capture_output=True, text=True,
                        env=dict(os.environ), timeout=60)
    assert (cp.returncode, cp.stdout, cp.stderr) == (0, "deployment.apps/web created\nservice/web created\n", "")
    cp = subprocess.run([str(exe), "--datastore", url, "get", "svc", "web", "-o", "name"],
                        capture_output=True, text=True, env=dict(os.environ, PODNET_DATASTORE="sqlite:///nonexistent-dir/x.db"),
                        timeout=60)
    assert (cp.returncode, cp.stdout) == (0, "service/web\n")
    cp = subprocess.run([str(exe), "get", "svc", "missing"], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 1 and "Traceback" not in cp.stderr


def test_reapply_restores_a_field_someone_else_changed(env, capsys):
    tmp, url = env
    f = write(tmp / "web.yaml", WEB)
    run(capsys, "apply", "-f", f)
    s = open_datastore(url)
    d = s.get("Deployment", "default", "web")
    s.update(d.with_spec(dict(d.spec, replicas=7)).with_status({"readyReplicas": 7}))
    s.close()
    assert run(capsys, "apply", "-f", f)[1] == "deployment.apps/web configured\nservice/web unchanged\n"
    d = stored(url, "Deployment", "default", "web")
    assert d.spec["replicas"] == 3 and d.status == {"readyReplicas": 7}
    assert run(capsys, "apply", "-f", f)[1] == "deployment.apps/web unchanged\nservice/web unchanged\n"


def test_cluster_scoped_object_with_a_namespace_is_unchanged_on_reapply(env, capsys):
    tmp, _ = env
    f = write(tmp / "pool.yaml", "apiVersion: podnet.io/v1\nkind: IPPool\nmetadata: {name: p, namespace: default}\n"
                                 "spec: {cidr: 10.244.0.0/16}\n")
    assert run(capsys, "apply", "-f", f)[1] == "ippool.podnet.io/p created\n"
    assert run(capsys, "apply", "-f", f)[1] == "ippool.podnet.io/p unchanged\n"


def test_get_several_kinds_and_all(env, capsys):
    tmp, _ = env
    run(capsys, "apply", "-f", write(tmp / "web.yaml", WEB))
    rc, out, _ = run(capsys, "get", "all")
    tables = out.split("\n\n")
    assert rc == 0 and len(tables) == 2  # no pods yet: only services and deployments
    assert tables[0].splitlines()[1].split()[0] == "service/web"
    assert tables[1].splitlines()[1].split()[0] == "deployment.apps/web"
    assert run(capsys, "get", "svc,deploy", "-o", "name")[1] == "service/web\ndeployment.apps/web\n"
    assert run(capsys, "get", "svc,deploy", "web")[0] == 1


def test_namespaces_carry_their_name_label(env, capsys):
    tmp, url = env
    f = write(tmp / "ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: a}}\n")
    run(capsys, "apply", "-f", f)
    assert stored(url, "Namespace", "", "shop").labels == {"team": "a", "kubernetes.io/metadata.name": "shop"}
    assert stored(url, "Namespace", "", "kube-system").labels == {"kubernetes.io/metadata.name": "kube-system"}
    assert run(capsys, "apply", "-f", f)[1] == "namespace/shop unchanged\n"
    assert run(capsys, "get", "ns", "-l", "kubernetes.io/metadata.name=shop", "-o", "name")[1] == "namespace/shop\n"


def test_bad_label_selector_is_a_user_error(env, capsys):
    rc, out, err = run(capsys, "get", "pods", "-l", "app in web")
    assert rc == 1 and err == "error: bad label selector 'app in web': bad selector term 'app in web': expected ( values )\n"
    rc, out, err = run(capsys, "get", "pods", "-l", "my app")
    assert rc == 1 and err == "error: bad label selector 'my app': key 'my app' name part must consist of " \
                              "alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric\n"
    rc, out, err = run(capsys, "get", "pods", "-l", "app in (a b)")
    assert rc == 1 and err.startswith("error: bad label selector 'app in (a b)': value 'a b' must be empty or")
