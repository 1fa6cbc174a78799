"""apply/delete with the real Service admission (podnet.ipam.serviceips): cluster IPs and
node ports are allocated on apply, kept on re-apply, refused with the object's name, given
back on delete."""
from __future__ import annotations

import ipaddress

from cli_helpers import run, stored, write
from podnet.api.defaults import NODE_PORT_RANGE, SERVICE_CIDR_V4
from podnet.datastore.interface import open_datastore
from podnet.ipam import serviceips


SVC = """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"""


def held(url: str) -> list[str]:
    s = open_datastore(url)
    try:
        return sorted(o.name for k in (serviceips.IP_KIND, serviceips.PORT_KIND) for o in s.list(k).items)
    finally:
        s.close()


def test_allocate_keep_release(env, capsys):
    tmp, url = env
    f = write(tmp / "svc.yaml", SVC)
    assert run(capsys, "apply", "-f", f)[0] == 0
    svc = stored(url, "Service", "default", "web")
    ip, node_port = svc.spec["clusterIP"], svc.spec["ports"][0]["nodePort"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(SERVICE_CIDR_V4)
    assert NODE_PORT_RANGE[0] <= node_port <= NODE_PORT_RANGE[1]
    assert held(url) == sorted([ip, f"tcp-{node_port}"])
    # a changed manifest keeps what was allocated
    write(tmp / "svc.yaml", SVC.replace("{app: web}", "{app: web2}"))
    assert run(capsys, "apply", "-f", f)[1] == "service/web configured\n"
    again = stored(url, "Service", "default", "web")
    assert (again.spec["clusterIP"], again.spec["ports"][0]["nodePort"]) == (ip, node_port)
    rc, out, _ = run(capsys, "get", "svc", "web")
    assert out.splitlines()[1].split()[2:5] == [ip, "<none>", f"80:{node_port}/TCP"]
    assert run(capsys, "delete", "-f", f)[0] == 0
    assert held(url) == []


def test_taken_cluster_ip_is_refused_and_nothing_applied(env, capsys):
    tmp, url = env
    run(capsys, "apply", "-f", write(tmp / "a.yaml", SVC))
    ip = stored(url, "Service", "default", "web").spec["clusterIP"]
    f = write(tmp / "b.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n---\n"
              + SVC.replace("{name: web}", "{name: web2}").replace("type: NodePort", f"clusterIP: {ip}"))
    rc, out, err = run(capsys, "apply", "-f", f)
    assert (rc, out) == (1, "")
    first, second = err.splitlines()
    assert first.startswith(f"error: {f} doc 2 Service default/web2: spec.clusterIPs[0]: ")
    assert ip in first
    assert second == "error: nothing applied: undid 1 earlier object(s) of this apply"
    assert run(capsys, "get", "ns", "other")[0] == 1
