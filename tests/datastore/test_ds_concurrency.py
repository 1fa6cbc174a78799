"""Many processes, one counter: compare-and-swap loses no update, on every backend."""
from __future__ import annotations

import subprocess
import sys

import pytest

from podnet.api.objects import from_dict

WORKER = r"""
import sys

import pytest
from podnet.datastore.interface import Conflict, open_datastore
url, n = sys.argv[1], int(sys.argv[2])
store = open_datastore(url)
conflicts = 0
for _ in range(n):
    while True:
        cur = store.get("Namespace", "", "counter")
        d = cur.to_dict()
        ann = d["metadata"]["annotations"]
        ann["count"] = str(int(ann["count"]) + 1)
        try:
            store.update(from_dict(d), revision=cur.resource_version)
            break
        except Conflict:
            conflicts += 1
store.close()
print(conflicts)
""".replace("from podnet.datastore.interface", "from podnet.api.objects import from_dict\nfrom podnet.datastore.interface")

PROCS, INCREMENTS = 8, 200


@pytest.mark.slow
def test_cas_increments_from_many_processes_lose_nothing(backend):
    store = backend.open()
    # A kind every backend holds, the Kubernetes API included (it serves no made-up kinds).
    store.create(from_dict({"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": "counter", "annotations": {"count": "0"}}}))
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, backend.url, str(INCREMENTS)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(PROCS)]
    conflicts = 0
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        conflicts += int(out.strip())
    final = store.get("Namespace", "", "counter")
    assert final.metadata["annotations"]["count"] == str(PROCS * INCREMENTS)
    print(f"\n{backend.name}: {PROCS}x{INCREMENTS} CAS increments, {conflicts} conflicts retried")
