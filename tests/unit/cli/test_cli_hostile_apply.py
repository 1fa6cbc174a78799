"""`podnet apply` with hostile input, as a user runs it (the console script, real stdin
bytes, a real SQLite store): a clean one-line error, no traceback, nothing written."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cli_helpers import run, write
from podnet.datastore.interface import open_datastore

EXE = Path(sys.executable).parent / "podnet"
NS = b"apiVersion: v1\nkind: Namespace\nmetadata: {name: first}\n---\n"


def apply_stdin(data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(EXE), "apply", "-f", "-"], input=data, capture_output=True,
                          env=dict(os.environ), timeout=60)


def namespaces(url: str) -> set[str]:
    s = open_datastore(url)
    try:
        return {o.name for o in s.list("Namespace").items}
    finally:
        s.close()


def billion_laughs() -> bytes:
    lines = ["apiVersion: v1", "kind: Namespace", "metadata: {name: boom}",
             'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefghi", "bcdefghij"):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 10) + "]")
    return ("\n".join(lines) + "\n").encode()


def test_non_utf8_stdin_is_a_clean_error(env):
    _, url = env
    cp = apply_stdin(NS + b"apiVersion: v1\nkind: Namespace\nmetadata: {name: \xff\xfe}\n")
    assert cp.returncode == 1 and cp.stdout == b""
    assert cp.stderr.decode() == "error: <stdin>:7:18: not UTF-8 text (invalid start byte, byte 107 of the input)\n"
    assert "first" not in namespaces(url)


def test_alias_bomb_after_a_good_document_applies_nothing(env):
    _, url = env
    cp = apply_stdin(NS + billion_laughs())
    err = cp.stderr.decode()
    assert cp.returncode == 1 and b"Traceback" not in cp.stderr
    assert err.startswith("error: <stdin> doc 2: ") and "bytes as JSON (YAML aliases expanded)" in err
    assert "first" not in namespaces(url)


def test_big_annotations_are_refused_with_the_field_named(env, capsys):
    tmp, url = env
    big = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: big\n  annotations: {{note: {}}}\n"
    f = write(tmp / "big.yaml", big.format("x" * (1 << 20)))
    rc, out, err = run(capsys, "apply", "-f", f)
    assert rc == 1 and out == ""
    assert err == (f"error: {f} doc 1 Namespace big: metadata.annotations: Too long: must have at most "
                   f"262144 bytes (has {(1 << 20) + 4})\n")
    f = write(tmp / "huge.yaml", big.format("x" * (8 << 20)))  # over the object limit too
    rc, out, err = run(capsys, "apply", "-f", f)
    assert rc == 1 and out == ""
    assert err == (f"error: {f} doc 1: the object is more than 1572864 bytes as JSON, the most etcd "
                   f"and so Kubernetes stores (1.5 MiB) (it passes that at metadata.annotations)\n")
    assert "big" not in namespaces(url)


def test_the_last_applied_copy_counts_towards_the_annotation_limit(env, capsys):
    """As with kubectl's last-applied-configuration: 200 KiB of annotations pass validation,
    but stored with apply's copy of the manifest they would be 400 KiB."""
    tmp, url = env
    f = write(tmp / "two.yaml", NS.decode() + "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: second\n"
                                f"  annotations: {{note: {'x' * (200 << 10)}}}\n")
    rc, out, err = run(capsys, "apply", "-f", f)
    assert rc == 1 and out == ""
    assert ("two.yaml doc 2 Namespace second: metadata.annotations: Too long: must have at most "
            "262144 bytes") in err and "counting podnet.io/last-applied: apply's copy of the manifest" in err
    assert "nothing applied: undid 1 earlier object(s) of this apply" in err
    assert not {"first", "second"} & namespaces(url)
