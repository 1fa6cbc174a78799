"""Server-side apply and managedFields over HTTP, in process (real aiohttp, real SQLite).

As the Kubernetes documentation on server-side apply describes it: the applier owns what
it applied; a field another manager set to another value is a conflict (409 naming field
and manager) unless forced, which moves the ownership; a field the applier drops is
removed unless someone else owns it; re-applying the same configuration writes nothing.
"""
from __future__ import annotations

import asyncio
import json

from aiohttp.test_utils import TestClient, TestServer

from podnet.apiserver.auth import TokenTable
from podnet.apiserver.bootstrap import ensure_default_namespaces
from podnet.apiserver.fieldset import fields_of, from_fields_v1, to_fields_v1
from podnet.apiserver.http_app import ApiApp
from podnet.apiserver.write import Writer
from podnet.datastore.interface import open_datastore

H = {"Authorization": "Bearer admin-token"}
SVC = "/api/v1/namespaces/default/services"
APPLY = {**H, "Content-Type": "application/apply-patch+yaml"}


def run(tmp_path, body):
    store = open_datastore(f"sqlite://{tmp_path / 'store.db'}")
    ensure_default_namespaces(Writer(store))

    async def main():
        api = ApiApp(store, TokenTable('admin-token,admin,1,"system:masters"'))
        async with TestClient(TestServer(api.app())) as c:
            return await body(c)
    try:
        return asyncio.run(main())
    finally:
        store.close()


def cfg(labels=None, target=8080):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "labels": labels or {"app": "web"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": target}]}}


async def apply(c, body, manager="alice", force=False):
    q = f"?fieldManager={manager}" + ("&force=true" if force else "")
    r = await c.patch(f"{SVC}/web{q}", data=json.dumps(body), headers=APPLY)
    return r.status, await r.json()


def managers(obj):
    return {(e["manager"], e["operation"]): from_fields_v1(e["fieldsV1"]) for e in obj["metadata"]["managedFields"]}


def test_fieldsv1_round_trip_and_keyed_lists():
    paths = fields_of(cfg(), "Service")
    assert ("f:spec", "f:ports", 'k:{"port":80}', "f:targetPort") in paths
    assert ("f:metadata", "f:labels", "f:app") in paths
    tree = to_fields_v1(paths)
    assert tree["f:spec"]["f:ports"]['k:{"port":80}']["."] == {}
    assert from_fields_v1(tree) == paths


def test_apply_creates_owns_and_reapply_is_a_no_op(tmp_path):
    async def body(c):
        code, obj = await apply(c, cfg())
        assert code == 201 or code == 200, obj
        own = managers(obj)[("alice", "Apply")]
        assert ("f:spec", "f:selector", "f:app") in own
        code, again = await apply(c, cfg())
        assert code == 200 and again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    run(tmp_path, body)


def test_conflict_with_another_manager_then_force(tmp_path):
    async def body(c):
        await apply(c, cfg())
        r = await c.get(f"{SVC}/web", headers=H)
        live = await r.json()
        live["spec"]["ports"][0]["targetPort"] = 9090
        r = await c.put(f"{SVC}/web?fieldManager=bob", json=live, headers=H)
        assert r.status == 200
        assert ("f:spec", "f:ports", 'k:{"port":80}', "f:targetPort") in managers(await r.json())[("bob", "Update")]
        code, st = await apply(c, cfg(target=7070))
        assert code == 409 and st["reason"] == "Conflict"
        assert st["details"]["causes"] == [{"reason": "FieldManagerConflict", "field": ".spec.ports[port=80].targetPort",
                                            "message": 'conflict with "bob" using v1'}]
        code, obj = await apply(c, cfg(target=7070), force=True)
        assert code == 200 and obj["spec"]["ports"][0]["targetPort"] == 7070
        m = managers(obj)
        assert ("f:spec", "f:ports", 'k:{"port":80}', "f:targetPort") not in m.get(("bob", "Update"), set())
        # applying bob's value again with the same value as live is not a conflict
        code, _ = await apply(c, cfg(target=7070), manager="carol")
        assert code == 200
    run(tmp_path, body)


def test_a_dropped_field_goes_unless_someone_else_owns_it(tmp_path):
    async def body(c):
        await apply(c, cfg(labels={"app": "web", "tier": "a", "team": "x"}))
        await apply(c, cfg(labels={"app": "web", "team": "x"}), manager="dave")
        code, obj = await apply(c, cfg(labels={"app": "web"}))
        assert code == 200
        assert obj["metadata"]["labels"] == {"app": "web", "team": "x"}   # tier went; dave keeps team
    run(tmp_path, body)


def test_apply_needs_a_field_manager_and_a_matching_name(tmp_path):
    async def body(c):
        r = await c.patch(f"{SVC}/web", data=json.dumps(cfg()), headers=APPLY)
        assert r.status == 422
        bad = cfg()
        bad["metadata"]["name"] = "other"
        code, st = await apply(c, bad)
        assert code == 400
        r = await c.get(f"{SVC}/web", headers=H)
        assert r.status == 404
    run(tmp_path, body)


def test_kubectl_takes_over_what_client_side_apply_set_but_nothing_else(tmp_path):
    async def body(c):
        first = cfg(target=8080)
        first["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(first)}
        r = await c.post(f"{SVC}?fieldManager=kubectl-client-side-apply", json=first, headers=H)
        assert r.status == 201
        live = await r.json()
        live["metadata"]["labels"]["owner"] = "ed"          # not in last-applied
        r = await c.put(f"{SVC}/web?fieldManager=ed", json=live, headers=H)
        assert r.status == 200
        code, obj = await apply(c, cfg(target=9090), manager="kubectl")
        assert code == 200 and obj["spec"]["ports"][0]["targetPort"] == 9090
        ann = json.loads(obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
        assert ann["spec"]["ports"][0]["targetPort"] == 9090
        code, st = await apply(c, cfg(labels={"app": "web", "owner": "me"}, target=9090), manager="kubectl")
        assert code == 409 and st["details"]["causes"][0]["field"] == ".metadata.labels.owner"
        code, st = await apply(c, cfg(target=7070), manager="someone-else")
        assert code == 409
    run(tmp_path, body)


def test_dry_run_checks_everything_and_writes_nothing(tmp_path):
    async def body(c):
        r = await c.post(f"{SVC}?dryRun=All", json=cfg(), headers=H)
        obj = await r.json()
        assert r.status == 201 and obj["metadata"]["name"] == "web" and obj["metadata"]["uid"]
        assert (await c.get(f"{SVC}/web", headers=H)).status == 404
        bad = cfg()
        bad["spec"]["ports"][0]["port"] = 70000
        assert (await c.post(f"{SVC}?dryRun=All", json=bad, headers=H)).status == 422
        assert (await c.post(f"{SVC}?dryRun=Some", json=cfg(), headers=H)).status == 400
        code, live = await apply(c, cfg())
        rv = live["metadata"]["resourceVersion"]
        r = await c.patch(f"{SVC}/web?fieldManager=alice&dryRun=All", data=json.dumps(cfg(target=9999)), headers=APPLY)
        assert r.status == 200 and (await r.json())["spec"]["ports"][0]["targetPort"] == 9999
        r = await c.delete(f"{SVC}/web?dryRun=All", headers=H)
        assert r.status == 200
        r = await c.delete("/api/v1/namespaces/default?dryRun=All", headers=H)
        assert r.status == 403
        now = await (await c.get(f"{SVC}/web", headers=H)).json()
        assert now["metadata"]["resourceVersion"] == rv and now["spec"]["ports"][0]["targetPort"] == 8080
    run(tmp_path, body)


def test_dry_run_in_delete_options(tmp_path):
    async def body(c):
        await apply(c, cfg())
        r = await c.delete(f"{SVC}/web", json={"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]},
                           headers=H)
        assert r.status == 200
        assert (await c.get(f"{SVC}/web", headers=H)).status == 200
        r = await c.delete(f"{SVC}/web", json={"dryRun": "All"}, headers=H)
        assert r.status == 400
        assert (await c.get(f"{SVC}/web", headers=H)).status == 200
    run(tmp_path, body)
