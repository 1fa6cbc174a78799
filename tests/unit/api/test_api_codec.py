"""Loading manifests: files, directories, stdin, multi-document, List, JSON, bad YAML."""
from __future__ import annotations

import io
import json

import pytest

from podnet.api.codec import as_list, load_path, load_paths, load_text, to_json, to_yaml
from podnet.api.errors import InvalidObjects, LoadError, Origin
from podnet.api.objects import Service

NS = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}\n"


def names(ms):
    return [m.obj.name for m in ms]


def test_one_file_many_documents(tmp_path):
    f = tmp_path / "a.yaml"
    f.write_text("---\n" + NS.format("a") + "---\n" + "---\n# only a comment\n---\n" + NS.format("b"))
    ms = load_path(str(f))
    assert names(ms) == ["a", "b"]
    # documents keep their position in the file: the empty ones count
    assert [m.origin for m in ms] == [Origin(str(f), 1), Origin(str(f), 4)]


def test_directory_recursive_sorted_and_filtered(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "b.yaml").write_text(NS.format("b"))
    (tmp_path / "a.yml").write_text(NS.format("a"))
    (tmp_path / "sub" / "c.json").write_text(json.dumps({"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": "c"}}))
    (tmp_path / "sub" / "deeper" / "d.yaml").write_text(NS.format("d"))
    (tmp_path / "notes.txt").write_text("not a manifest: [")
    assert names(load_path(str(tmp_path))) == ["a", "b", "c", "d"]


def test_stdin():
    ms = load_path("-", io.StringIO(NS.format("x")))
    assert names(ms) == ["x"]
    assert ms[0].origin == Origin("<stdin>", 1)


def test_list_kind_and_typed_lists():
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}]})
    ms = load_text(text, "l.json", is_json=True)
    assert names(ms) == ["a", "s"]
    assert isinstance(ms[1].obj, Service)
    assert ms[1].origin == Origin("l.json", 1, 1)
    ms = load_text("apiVersion: v1\nkind: ServiceList\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: s}}\n", "x")
    assert names(ms) == ["s"]


def test_every_field_is_kept_and_timestamps_stay_strings():
    text = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  creationTimestamp: 2024-01-02T03:04:05Z\n"
            "  annotations: {x.io/y: z}\nspec:\n  containers: [{name: c, image: i, resources: {limits: {cpu: 1}}}]\n"
            "  someFutureField: {nested: [1, 2]}\n")
    obj = load_text(text, "p.yaml")[0].obj
    assert obj.metadata["creationTimestamp"] == "2024-01-02T03:04:05Z"
    assert obj.spec["someFutureField"] == {"nested": [1, 2]}
    assert obj.spec["containers"][0]["resources"] == {"limits": {"cpu": 1}}
    json.dumps(obj.raw)  # storable as is


def test_malformed_yaml_gives_file_and_line():
    with pytest.raises(LoadError) as ei:
        load_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n  labels: [a\n", "bad.yaml")
    assert str(ei.value) == "bad.yaml:6:1: did not find expected ',' or ']' (while parsing a flow sequence at line 5)"
    assert ei.value.line == 6
    with pytest.raises(LoadError) as ei:
        load_text("a: b\n c: d\n", "bad.yaml")
    assert str(ei.value) == "bad.yaml:2:3: mapping values are not allowed in this context"


def test_duplicate_key_is_an_error():
    with pytest.raises(LoadError) as ei:
        load_text("kind: Pod\nmetadata:\n  name: a\n  name: b\n", "d.yaml")
    assert str(ei.value) == "d.yaml:4:3: key 'name' is set twice in one mapping"


def test_malformed_json_gives_line_and_column():
    with pytest.raises(LoadError) as ei:
        load_text('{"kind": "Pod",\n "metadata": }', "p.json", is_json=True)
    assert str(ei.value) == "p.json:2:14: Expecting value"


def test_documents_that_are_not_objects():
    with pytest.raises(InvalidObjects) as ei:
        load_text("- a\n- b\n---\njust text\n", "x.yaml")
    assert ei.value.lines == [
        "x.yaml doc 1: expected an object (a mapping with apiVersion and kind), got a list",
        "x.yaml doc 2: expected an object (a mapping with apiVersion and kind), got a string",
    ]


def test_missing_file():
    with pytest.raises(LoadError) as ei:
        load_paths(["/nonexistent/x.yaml"])
    assert str(ei.value) == "/nonexistent/x.yaml: no such file or directory"


def test_output_round_trips():
    obj = load_text(NS.format("a"), "a")[0].obj
    assert load_text(to_yaml(obj), "o")[0].obj == obj
    assert json.loads(to_json(obj)) == obj.raw
    lst = as_list([obj])
    assert lst["kind"] == "List" and lst["items"] == [obj.raw]
    assert to_yaml({"spec": {"ports": [{"port": 80}]}}) == "spec:\n  ports:\n  - port: 80\n"
