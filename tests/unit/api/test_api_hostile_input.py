"""Hostile manifests are refused at load or validation with the place named, never
walked as trees: alias bombs, cycles, deep nesting, non-UTF-8 bytes, non-JSON values,
objects and annotations bigger than Kubernetes stores."""
from __future__ import annotations

import io
import json

import pytest

from podnet.api.codec import load_bytes, load_path, load_text
from podnet.api.errors import InvalidObjects, LoadError
from podnet.api.jsontree import MAX_DEPTH, MAX_OBJECT_BYTES, TreeError, measure, plain
from podnet.api.objects import from_dict
from podnet.api.validate import validate_object
from podnet.api.validate_meta import TOTAL_ANNOTATION_SIZE_LIMIT

NS = "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\n"


def bomb(levels: int = 30, width: int = 10) -> str:
    """width**levels strings from a few kilobytes: no walker could ever finish it."""
    lines = ["apiVersion: v1", "kind: Namespace", "metadata: {name: boom}",
             "l0: &l0 [" + ",".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def problems(text: str, is_json: bool = False) -> list[str]:
    with pytest.raises(InvalidObjects) as e:
        load_text(text, "m.yaml", is_json)
    return e.value.lines


def test_alias_bomb_refused_with_where_it_grew():
    lines = problems(NS + bomb())
    assert len(lines) == 1
    assert lines[0].startswith("m.yaml doc 2: l")
    assert "bytes as JSON (YAML aliases expanded)" in lines[0]


def test_a_bomb_inside_a_list_item_is_named_by_item():
    text = ("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n"
            "- apiVersion: v1\n  kind: Namespace\n  metadata: {name: b}\n  x: &x [" + ",".join(['"' + "y" * 1000 + '"'] * 1000)
            + "]\n  z: [*x, *x]\n")
    lines = problems(text)
    assert lines == [f"m.yaml doc 1 items[1]: the object is more than {MAX_OBJECT_BYTES} bytes as JSON, "
                     f"the most etcd and so Kubernetes stores (1.5 MiB) (it passes that at z)"]


def test_modest_aliases_still_work_and_are_copied_apart():
    text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  labels: &l {app: web}\n  annotations: *l\n"
    [m] = load_text(text, "m.yaml")
    md = m.obj.raw["metadata"]
    assert md["labels"] == md["annotations"] == {"app": "web"}
    assert md["labels"] is not md["annotations"]  # a later edit of one cannot change the other


def test_cycle_depth_and_non_json_values():
    assert "a cycle" in problems("a: &a [*a]\n")[0]
    assert f"nested more than {MAX_DEPTH} levels deep" in problems("x: " + "[" * 150 + "]" * 150 + "\n")[0]
    assert "binary data (!!binary)" in problems("kind: Pod\nx: !!binary aGVsbG8=\n")[0]
    assert "a set (!!set)" in problems("kind: Pod\nx: !!set {a, b}\n")[0]
    assert "x: inf is not a JSON number" in problems("kind: Pod\nx: .inf\n")[0]
    assert "key '1' is set twice" in problems("{1: a, '1': b}\n")[0]
    with pytest.raises(LoadError, match="NaN is not a JSON number"):
        load_text('{"kind": "Pod", "x": NaN}', "m.json", is_json=True)
    with pytest.raises(LoadError, match="nested too deeply"):
        load_text("[" * 100_000, "m.json", is_json=True)
    with pytest.raises(LoadError, match="nesting depth"):
        load_text("[" * 100_000, "m.yaml")


def test_yaml_keys_that_are_not_strings_become_strings_as_kubernetes_reads_them():
    [m] = load_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a, labels: {1: x, 2.5: y, ~: z}}\n", "m")
    assert m.obj.raw["metadata"]["labels"] == {"1": "x", "2.5": "y", "null": "z"}


def test_non_utf8_bytes_are_a_clean_error_on_stdin_and_in_files(tmp_path):
    bad = b"apiVersion: v1\nkind: Namespace\nmetadata: {name: a\xff\xfe}\n"
    with pytest.raises(LoadError, match=r"<stdin>:3:19: not UTF-8 text \(invalid start byte, byte 49 of the input\)"):
        load_path("-", io.TextIOWrapper(io.BytesIO(bad), errors="surrogateescape"))
    with pytest.raises(LoadError, match="not UTF-8"):
        load_path("-", io.StringIO("name: a\udcff\n"))  # what a text stdin would smuggle in
    f = tmp_path / "bad.yaml"
    f.write_bytes(bad)
    with pytest.raises(LoadError, match=r"bad.yaml:3:19: not UTF-8 text"):
        load_path(str(f))
    assert [m.obj.name for m in load_bytes(NS.encode(), "x")] == ["ok"]


def test_measure_counts_shared_nodes_without_walking_them():
    leaf = ["x" * 8] * 10
    tree: object = leaf
    for _ in range(40):  # 10**41 strings if walked
        tree = [tree] * 10
    with pytest.raises(TreeError):
        measure(tree)
    small = {"a": [1, 2.5, True, None, "s"], "b": {"c": []}}
    assert measure(small).bytes == len(json.dumps(small, separators=(",", ":")))
    assert plain(small) == small


# ---- Kubernetes' metadata limits ---------------------------------------------------------
def _ns(**md):
    return from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", **md}})


def errors_of(obj) -> list[str]:
    return [str(e) for e in validate_object(obj)]


def test_annotations_total_size_limit_is_kubernetes_256_kib():
    key = "k"
    at_limit = _ns(annotations={key: "v" * (TOTAL_ANNOTATION_SIZE_LIMIT - len(key))})
    assert errors_of(at_limit) == []
    over = _ns(annotations={key: "v" * (TOTAL_ANNOTATION_SIZE_LIMIT - len(key) + 1)})
    assert errors_of(over) == ["metadata.annotations: Too long: must have at most 262144 bytes (has 262145)"]
    eight_mib = _ns(annotations={"big": "x" * (8 << 20)})
    assert errors_of(eight_mib) == [f"the object is more than {MAX_OBJECT_BYTES} bytes as JSON, the most etcd "
                                    f"and so Kubernetes stores (1.5 MiB) (it passes that at metadata.annotations)"]
    # bytes, not characters: 'é' is two bytes in UTF-8
    assert errors_of(_ns(annotations={"k": "é" * (TOTAL_ANNOTATION_SIZE_LIMIT // 2)}))


def test_annotation_keys_names_labels_finalizers_owner_references():
    errs = errors_of(_ns(annotations={"Example.COM/Key": "ok", "a b": "x", "x" * 64: "y"},
                         labels={"k": "v" * 64}, finalizers=["kubernetes", "not a name"],
                         generation=-1,
                         ownerReferences=[{"apiVersion": "apps/v1", "kind": "Deployment", "name": "d",
                                           "uid": "1", "controller": True},
                                          {"apiVersion": "v1", "kind": "Pod", "name": "", "controller": True}]))
    joined = "\n".join(errs)
    assert "Example.COM/Key" not in joined  # annotation keys: case does not matter
    assert 'metadata.annotations: key "a b" name part must consist of alphanumerics' in joined
    assert "name part is longer than 63 characters" in joined
    assert "metadata.labels.k:" in joined and "is longer than 63 characters" in joined
    assert 'metadata.finalizers[1]: "not a name"' in joined
    assert "metadata.generation: -1 is not >= 0" in joined
    assert "metadata.ownerReferences[1].name: is required" in joined
    assert "metadata.ownerReferences[1].uid: is required" in joined
    assert "only one reference can have controller set to true (found Deployment/d, Pod/)" in joined
    name = from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p" * 254},
                      "spec": {"containers": [{"name": "c", "image": "i"}]}})
    assert any(e.startswith("metadata.name:") and "at most 253 characters" in e for e in errors_of(name))
