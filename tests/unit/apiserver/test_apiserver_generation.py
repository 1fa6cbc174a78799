"""metadata.generation counts a Deployment's spec changes (what rollout status compares)."""
from __future__ import annotations

from podnet.api.objects import from_dict
from podnet.apiserver.bootstrap import ensure_default_namespaces
from podnet.apiserver.write import Writer
from podnet.datastore.interface import open_datastore


def test_generation_follows_spec_changes_only(tmp_path):
    s = open_datastore(f"sqlite://{tmp_path / 'store.db'}")
    try:
        w = Writer(s)
        ensure_default_namespaces(w)
        d = w.create(from_dict({"apiVersion": "apps/v1", "kind": "Deployment",
                                "metadata": {"name": "web", "namespace": "default", "generation": 7},
                                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                                         "template": {"metadata": {"labels": {"app": "web"}},
                                                      "spec": {"containers": [{"name": "c", "image": "x"}]}}}}))
        assert d.metadata["generation"] == 1
        d = w.update(d.with_metadata(labels={"a": "b"}))
        assert d.metadata["generation"] == 1
        d = w.update(d.with_spec({**d.spec, "replicas": 3}))
        assert d.metadata["generation"] == 2
        d = w.update_status(d.with_status({"replicas": 3}))
        assert d.metadata["generation"] == 2
        svc = w.create(from_dict({"apiVersion": "v1", "kind": "Service",
                                  "metadata": {"name": "s", "namespace": "default"}, "spec": {"ports": [{"port": 80}]}}))
        assert "generation" not in svc.metadata
    finally:
        s.close()
