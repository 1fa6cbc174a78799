"""Garbage in, a Status out: random bodies of every content type to every write verb of
every served resource never make a 500, never stop the server, never write half an
object (in process: real aiohttp, real SQLite)."""
from __future__ import annotations

import asyncio
import json
import random

from aiohttp.test_utils import TestClient, TestServer

from podnet.apiserver.auth import TokenTable
from podnet.apiserver.bootstrap import ensure_default_namespaces
from podnet.apiserver.http_app import ApiApp
from podnet.apiserver.resources import RESOURCES
from podnet.apiserver.write import Writer
from podnet.datastore.interface import open_datastore

H = {"Authorization": "Bearer t"}
TYPES = ["application/json", "application/yaml", "application/merge-patch+json",
         "application/strategic-merge-patch+json", "application/json-patch+json",
         "application/apply-patch+yaml", "application/vnd.kubernetes.protobuf", "text/plain", ""]
KEYS = ["metadata", "name", "spec", "ports", "port", "kind", "apiVersion", "$patch", "op", "path",
        "value", "containers", "replicas", "labels", "selector", "status", "namespace", "items"]


def value(rng: random.Random, depth: int = 0):
    r = rng.random()
    if depth > 4 or r < 0.3:
        return rng.choice([None, True, 0, -1, 2 ** 40, 1.5, "", "x", "web", "default", "replace", "delete"])
    if r < 0.65:
        return {rng.choice(KEYS): value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return [value(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def body(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.2:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    if r < 0.3:
        return b"k8s\x00" + bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    return json.dumps(value(rng)).encode()


def test_random_bodies_get_a_status_never_a_crash(tmp_path):
    store = open_datastore(f"sqlite://{tmp_path / 'store.db'}")
    ensure_default_namespaces(Writer(store))
    rng = random.Random(14)
    before = {r.kind: len(store.list(r.kind).items) for r in RESOURCES if not r.derived}

    async def main():
        api = ApiApp(store, TokenTable('t,admin,1,"system:masters"'))
        async with TestClient(TestServer(api.app())) as c:
            codes = set()
            for i in range(400):
                r = rng.choice(RESOURCES)
                base = f"/{'apis/' + r.group if r.group else 'api'}/{r.version}/" + \
                       (f"namespaces/default/{r.plural}" if r.namespaced else r.plural)
                method, path = rng.choice([("POST", base), ("PUT", base + "/web"), ("PATCH", base + "/web"),
                                           ("PATCH", base + "/web?fieldManager=f"), ("DELETE", base + "/web"),
                                           ("PUT", base + "/web/status"), ("DELETE", base)])
                resp = await c.request(method, path, data=body(rng),
                                       headers={**H, "Content-Type": rng.choice(TYPES)})
                text = await resp.text()
                assert resp.status != 500, (method, path, text)
                if resp.status >= 400:
                    assert json.loads(text)["kind"] == "Status", text
                codes.add(resp.status)
            r = await c.get("/api/v1/namespaces", headers=H)
            assert r.status == 200                      # still serving
            return codes
    codes = asyncio.run(main())
    assert {400, 415} <= codes
    after = {r.kind: len(store.list(r.kind).items) for r in RESOURCES if not r.derived}
    store.close()
    # only whole, valid objects could have been written (the random bodies that happened to be valid)
    assert all(after[k] >= before[k] for k in before)
