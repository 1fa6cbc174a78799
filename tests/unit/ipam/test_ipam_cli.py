"""`podnet ipam show` and `podnet get ippools` read the allocator's state."""
from __future__ import annotations

import json

from podnet.api.objects import from_dict
from podnet.cli.main import main
from podnet.ipam.allocator import Allocator, Request
from podnet.ipam.blocks import Handle


def test_ipam_show(tmp_path, capsys, monkeypatch):
    from podnet.datastore.sqlite import SqliteDatastore
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("PODNET_DATASTORE", url)
    s = SqliteDatastore(url)
    s.create(from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": "v4"},
                        "spec": {"cidr": "10.9.0.0/24", "blockSize": 28}}))
    for i in range(3):
        Allocator(s, "n1").assign(Request(Handle("n1", "k", f"c{i}", "eth0"), (4,)))
    Allocator(s, "n2").assign(Request(Handle("n2", "k", "d", "eth0"), (4,)))
    s.close()
    assert main(["ipam", "show"]) == 0
    out = capsys.readouterr().out
    assert "v4     10.9.0.0/24   4      250" in out
    assert out.count(" n1 ") == 1 and out.count(" n2 ") == 1
    assert main(["ipam", "show", "-o", "json", "--node", "n2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [b["node"] for b in doc["blocks"]] == ["n2"] and doc["pools"][0]["used"] == 4
    assert main(["get", "ippools"]) == 0
    assert "USED" in capsys.readouterr().out
    assert main(["describe", "ippool", "v4"]) == 0
    out = capsys.readouterr().out
    assert "Used:             4" in out and "node=n2 used=1" in out
