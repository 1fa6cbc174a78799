"""Executing a CNI plugin the way a runtime (libcni's pkg/invoke) does. Stdlib only.

Find `<dir>/<type>` in CNI_PATH (first regular executable file wins; a type with `/` is
refused), run it with the given environment and the config on stdin, parse stdout: a
result on exit 0, the spec's error object otherwise (stderr text when stdout is empty).
Its stderr is passed on to the stderr of the call being served, as libcni does.
Used by podnet-cni to delegate to a foreign IPAM plugin and by `podnet.cni.runtime`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Mapping, Sequence

from podnet.cni.errors import (DECODE_FAILURE, INTERNAL, INVALID_CONFIG, IO_FAILURE, TRY_AGAIN_LATER,
                               CniError)


def find_plugin(plugin_type: str, cni_path: Sequence[str]) -> str:
    if not plugin_type or "/" in plugin_type:
        raise CniError(INVALID_CONFIG, f"invalid plugin type {plugin_type!r}", "a file name in CNI_PATH")
    for d in cni_path:
        p = os.path.join(d, plugin_type)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    raise CniError(INVALID_CONFIG, f"failed to find plugin {plugin_type!r} in path {list(cni_path)}",
                   "install it there or fix CNI_PATH")


def exec_plugin(path: str, env: Mapping[str, str], stdin: bytes,
                prefix: Sequence[str] = (), timeout: float = 120) -> dict[str, Any] | None:
    """Run one plugin call; returns the parsed stdout (None when empty) or raises CniError."""
    argv = [*prefix, path]
    for attempt in range(5):  # libcni retries "text file busy" (a binary being replaced)
        try:
            cp = subprocess.run(argv, input=stdin, env=dict(env), capture_output=True, timeout=timeout)
            break
        except subprocess.TimeoutExpired as e:
            _pass_stderr(e.stderr)
            raise CniError(TRY_AGAIN_LATER, f"{os.path.basename(path)} did not answer within {timeout:g} s",
                           f"{' '.join(argv)} was killed") from None
        except OSError as e:
            if e.errno != 26 or attempt == 4:  # ETXTBSY
                raise CniError(IO_FAILURE, f"cannot execute {path}", str(e)) from None
            time.sleep(0.05)
    _pass_stderr(cp.stderr)
    except_text = cp.stderr.decode(errors="replace").strip()
    out = cp.stdout.strip()
    if cp.returncode != 0:
        if out:
            try:
                return _raise(json.loads(out), path)
            except ValueError:
                pass
        raise CniError(INTERNAL, f"{os.path.basename(path)} failed with exit {cp.returncode}",
                       (out.decode(errors="replace") + "\n" + except_text).strip())
    if not out:
        return None
    try:
        res = json.loads(out)
    except ValueError as e:
        raise CniError(DECODE_FAILURE, f"cannot decode the result of {os.path.basename(path)}",
                       f"{e}: {out[:200]!r}") from None
    if not isinstance(res, dict):
        raise CniError(DECODE_FAILURE, f"result of {os.path.basename(path)} is not a JSON object")
    return res


def _pass_stderr(data: bytes | None) -> None:
    if data:
        from podnet.cni.skel import CALL_STDERR
        sink = CALL_STDERR.get(sys.stderr)
        try:
            sink.write(data.decode(errors="replace"))
            sink.flush()
        except (OSError, ValueError):
            pass  # nobody reads our stderr any more: the call's answer still matters


def _raise(doc: Any, path: str) -> Any:
    if isinstance(doc, dict):
        raise CniError.from_dict(doc, f"{os.path.basename(path)} failed")
    raise CniError(INTERNAL, f"{os.path.basename(path)} failed", repr(doc))


def delegate(plugin_type: str, command: str, env: Mapping[str, str], conf_bytes: bytes) -> dict[str, Any] | None:
    """SPEC.md §4: same environment, only CNI_COMMAND changed, the complete config on stdin."""
    cni_path = [p for p in env.get("CNI_PATH", "").split(os.pathsep) if p]
    path = find_plugin(plugin_type, cni_path)
    e = dict(env)
    e["CNI_COMMAND"] = command
    return exec_plugin(path, e, conf_bytes)
