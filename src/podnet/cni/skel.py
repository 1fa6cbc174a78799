"""The plugin skeleton: environment + stdin in, one JSON document + exit code out.

Takes env/stdin/stdout as parameters (tests call it in-process), validates what every
verb needs (SPEC.md §2 variables, container ID and ifname syntax, cniVersion), and maps
every exception to the spec's error object at this edge, so a handler never prints.
Imports only the standard library and cni.errors: this is on every plugin call's path.
"""
from __future__ import annotations

import json
import os
import re
import sys
from contextvars import ContextVar
from typing import Any, Callable, Mapping, NamedTuple, TextIO

from podnet.cni.errors import (DECODE_FAILURE, INCOMPATIBLE_VERSION, INTERNAL, INVALID_CONFIG,
                               INVALID_ENV, IO_FAILURE, SUPPORTED_VERSIONS, CniError)

VERBS = ("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION")
_REQUIRED = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "STATUS": (), "GC": (), "VERSION": (),
}
# The stderr of the call being served: what a delegated plugin writes there goes to it
# (invoke.py), also when the daemon serves the call on one of its threads.
CALL_STDERR: ContextVar[TextIO] = ContextVar("cni_call_stderr")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")


class Args(NamedTuple):
    command: str
    container_id: str
    netns: str
    ifname: str
    args: str
    path: tuple[str, ...]
    conf: dict[str, Any]
    raw_stdin: bytes
    env: Mapping[str, str]

    @property
    def version(self) -> str:
        return str(self.conf.get("cniVersion") or "0.1.0")


Handler = Callable[[Args], "dict[str, Any] | None"]


def version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def parse(env: Mapping[str, str], stdin: bytes) -> Args:
    cmd = env.get("CNI_COMMAND", "")
    if not cmd:
        raise CniError(INVALID_ENV, "required env variables [CNI_COMMAND] missing")
    if cmd not in VERBS:
        raise CniError(INVALID_ENV, f"unknown CNI_COMMAND {cmd!r}", f"expected one of {', '.join(VERBS)}")
    missing = [k for k in _REQUIRED[cmd] if not env.get(k)]
    if missing:
        raise CniError(INVALID_ENV, f"required env variables [{', '.join(missing)}] missing",
                       f"CNI_COMMAND={cmd} needs {', '.join(_REQUIRED[cmd])}")
    cid, ifname = env.get("CNI_CONTAINERID", ""), env.get("CNI_IFNAME", "")
    if cid and not _ID_RE.match(cid):
        raise CniError(INVALID_ENV, f"invalid CNI_CONTAINERID {cid!r}",
                       "must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    if ifname and (ifname in (".", "..") or len(ifname) > 15
                   or any(c in ifname for c in "/:") or any(c.isspace() for c in ifname)):
        raise CniError(INVALID_ENV, f"invalid CNI_IFNAME {ifname!r}",
                       "an interface name has 1-15 characters, not '/', ':' or spaces, not . or ..")
    conf = decode_conf(stdin, cmd)
    return Args(cmd, cid, env.get("CNI_NETNS", ""), ifname, env.get("CNI_ARGS", ""),
                tuple(p for p in env.get("CNI_PATH", "").split(os.pathsep) if p), conf, stdin, env)


def decode_conf(stdin: bytes, cmd: str) -> dict[str, Any]:
    if cmd == "VERSION" and not stdin.strip():
        return {}
    try:
        conf = json.loads(stdin)
    except (ValueError, RecursionError) as e:  # RecursionError: nesting deeper than json can walk
        raise CniError(DECODE_FAILURE, "error unmarshalling network config from stdin", str(e)) from None
    if not isinstance(conf, dict):
        raise CniError(DECODE_FAILURE, "network config on stdin must be a JSON object",
                       f"got {type(conf).__name__}")
    if cmd == "VERSION":
        return conf
    v = conf.get("cniVersion")
    if v is None or v == "":
        v = "0.1.0"  # the spec's default for configs that omit it
    if not isinstance(v, str) or not _VERSION_RE.match(v):
        raise CniError(DECODE_FAILURE, f"cannot parse cniVersion {v!r}", "expected e.g. \"1.1.0\"")
    if v not in SUPPORTED_VERSIONS:
        raise CniError(INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f"config is {v!r}, plugin supports {list(SUPPORTED_VERSIONS)}")
    if cmd in ("STATUS", "GC") and version_tuple(v) < (1, 1, 0):
        raise CniError(INCOMPATIBLE_VERSION, f"{cmd} needs cniVersion 1.1.0 or later",
                       f"config is {v!r}")
    if not conf.get("name"):
        raise CniError(INVALID_CONFIG, "missing network name", "set \"name\" in the network config")
    if not _ID_RE.match(str(conf["name"])):
        raise CniError(INVALID_CONFIG, f"invalid network name {conf['name']!r}",
                       "must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    return conf


def version_result(stdin: bytes) -> dict[str, Any]:
    try:
        v = json.loads(stdin).get("cniVersion") if stdin.strip() else None
    except (ValueError, AttributeError, RecursionError):
        v = None
    return {"cniVersion": v or "0.1.0", "supportedVersions": list(SUPPORTED_VERSIONS)}


def run(handlers: Mapping[str, Handler], env: Mapping[str, str], stdin: bytes,
        stdout: TextIO, stderr: TextIO) -> int:
    """Dispatch one call; returns the exit code. Never raises."""
    token = CALL_STDERR.set(stderr)
    try:
        return _dispatch(handlers, env, stdin, stdout, stderr)
    finally:
        CALL_STDERR.reset(token)


def _dispatch(handlers: Mapping[str, Handler], env: Mapping[str, str], stdin: bytes,
              stdout: TextIO, stderr: TextIO) -> int:
    version = "1.1.0"
    try:
        if env.get("CNI_COMMAND") == "VERSION":
            out: dict[str, Any] | None = version_result(stdin)
        else:
            a = parse(env, stdin)
            version = a.version
            out = handlers[a.command](a)
    except CniError as e:
        json.dump(e.to_dict(version), stdout)
        stdout.write("\n")
        return 1
    except Exception as e:  # a bug: still answer in the protocol, with the cause
        import traceback
        traceback.print_exc(file=stderr)
        json.dump(CniError(INTERNAL, f"internal error: {type(e).__name__}", str(e)).to_dict(version), stdout)
        stdout.write("\n")
        return 1
    if out is not None:
        json.dump(out, stdout)
        stdout.write("\n")
    return 0


def main(handlers: Mapping[str, Handler]) -> int:
    try:
        stdin = sys.stdin.buffer.read()
    except OSError as e:
        json.dump(CniError(IO_FAILURE, "cannot read stdin", str(e)).to_dict(), sys.stdout)
        return 1
    return run(handlers, os.environ, stdin, sys.stdout, sys.stderr)
