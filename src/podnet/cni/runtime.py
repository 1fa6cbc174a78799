"""A tiny container-runtime side (what libcni/cnitool do): run a network's plugins for one
attachment, exactly as a runtime would (env + config on stdin, stdout + exit code).

`netconf` is one plugin's config (`type` at top level) or a conflist (`plugins` list),
whose plugins run in order for ADD/CHECK and in reverse for DEL, each getting the
previous result as prevResult (SPEC.md §3). `node_netns`, when given, is the namespace
the plugins run in (started from a thread inside it: in_netns): the node of the lab.
`capability_args` go into `runtimeConfig` of each plugin that declares the capability in
its `capabilities` (CONVENTIONS.md, as libcni does); `cni_args` becomes CNI_ARGS.
Raises CniError(code, msg, details) on failure.
"""
from __future__ import annotations

import contextvars
import copy
import json
import os
import threading
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

from podnet.cni.errors import IO_FAILURE, CniError
from podnet.cni.invoke import exec_plugin, find_plugin
from podnet.setns import NetnsError, enter

T = TypeVar("T")

__all__ = ["CniError", "add", "delete", "check", "status", "gc", "version"]


def _plugins(netconf: Mapping[str, Any]) -> list[dict[str, Any]]:
    if "plugins" not in netconf:
        return [dict(netconf)]
    out = []
    for p in netconf["plugins"]:
        d = dict(p)
        d["cniVersion"] = netconf.get("cniVersion", d.get("cniVersion"))
        d["name"] = netconf.get("name", d.get("name"))
        out.append(d)
    return out


def _path(cni_path: str | Sequence[str]) -> str:
    return cni_path if isinstance(cni_path, str) else os.pathsep.join(cni_path)


def _call(conf: Mapping[str, Any], command: str, cni_path: str, container_id: str = "",
          netns_path: str = "", ifname: str = "", node_netns: str | None = None,
          args: str = "") -> dict[str, Any] | None:
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
           "CNI_PATH": cni_path}
    if command in ("ADD", "DEL", "CHECK"):
        env.update({"CNI_CONTAINERID": container_id, "CNI_IFNAME": ifname})
        if netns_path:
            env["CNI_NETNS"] = netns_path
        if args:
            env["CNI_ARGS"] = args
    for k in ("PODNET_DATASTORE", "PODNET_CNI_ALLOW_HOST_NETNS"):
        if k in os.environ:
            env[k] = os.environ[k]
    binary = find_plugin(str(conf.get("type", "")), cni_path.split(os.pathsep))
    stdin = json.dumps(conf).encode()
    if not node_netns:
        return exec_plugin(binary, env, stdin)
    return in_netns(node_netns, lambda: exec_plugin(binary, env, stdin))


def in_netns(netns: str, fn: Callable[[], T]) -> T:
    """fn() in a thread of its own that entered `netns` for good (a name or a path), so the
    plugin it starts is born there, as a runtime's are in the host's namespace. Not
    `ip netns exec`, which costs a process more per call (issue 22); the plugin's
    stderr still goes where this call's does (the context is carried over)."""
    out: list[T] = []
    err: list[BaseException] = []
    ctx = contextvars.copy_context()

    def body() -> None:
        try:
            enter(netns)
            out.append(ctx.run(fn))
        except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
            err.append(e)
    t = threading.Thread(target=body, name=f"cni-in-{os.path.basename(netns)}", daemon=True)
    t.start()
    t.join()
    if err:
        if isinstance(err[0], NetnsError):
            raise CniError(IO_FAILURE, f"cannot enter the node's netns {netns}", str(err[0])) from None
        raise err[0]
    return out[0]


def with_runtime_config(conf: dict[str, Any], capability_args: Mapping[str, Any] | None) -> dict[str, Any]:
    caps = conf.get("capabilities")
    wanted = {k: v for k, v in (capability_args or {}).items() if isinstance(caps, Mapping) and caps.get(k) is True}
    if wanted:
        conf["runtimeConfig"] = {**(conf.get("runtimeConfig") or {}), **wanted}
    return conf


def add(netconf: Mapping[str, Any], container_id: str, netns_path: str, ifname: str,
        cni_path: str | Sequence[str], node_netns: str | None = None,
        capability_args: Mapping[str, Any] | None = None, cni_args: str = "",
        after_each: Callable[[str, dict[str, Any] | None], None] | None = None) -> dict[str, Any]:
    """`after_each(plugin type, result so far)` runs after each plugin's ADD (tests look
    at the pod between the plugins of a chain)."""
    prev: dict[str, Any] | None = None
    for p in _plugins(netconf):
        conf = with_runtime_config(copy.deepcopy(p), capability_args)
        if prev is not None:
            conf["prevResult"] = prev
        prev = _call(conf, "ADD", _path(cni_path), container_id, netns_path, ifname, node_netns,
                     cni_args) or prev
        if after_each is not None:
            after_each(str(p.get("type")), prev)
    if prev is None:
        raise CniError(999, "the plugins returned no result for ADD")
    return prev


def delete(netconf: Mapping[str, Any], container_id: str, netns_path: str, ifname: str,
           cni_path: str | Sequence[str], node_netns: str | None = None,
           prev_result: Mapping[str, Any] | None = None,
           capability_args: Mapping[str, Any] | None = None, cni_args: str = "") -> None:
    """In reverse order; each plugin gets the ADD's result and, as libcni does, the same
    runtimeConfig and CNI_ARGS as for ADD (portmap and bandwidth need them to undo)."""
    for p in reversed(_plugins(netconf)):
        conf = with_runtime_config(copy.deepcopy(p), capability_args)
        if prev_result is not None:
            conf["prevResult"] = dict(prev_result)
        _call(conf, "DEL", _path(cni_path), container_id, netns_path, ifname, node_netns, cni_args)


def check(netconf: Mapping[str, Any], container_id: str, netns_path: str, ifname: str,
          cni_path: str | Sequence[str], prev_result: Mapping[str, Any],
          node_netns: str | None = None, capability_args: Mapping[str, Any] | None = None,
          cni_args: str = "") -> None:
    for p in _plugins(netconf):
        conf = with_runtime_config(copy.deepcopy(p), capability_args)
        conf["prevResult"] = dict(prev_result)
        _call(conf, "CHECK", _path(cni_path), container_id, netns_path, ifname, node_netns, cni_args)


def status(netconf: Mapping[str, Any], cni_path: str | Sequence[str],
           node_netns: str | None = None) -> None:
    for p in _plugins(netconf):
        _call(p, "STATUS", _path(cni_path), node_netns=node_netns)


def gc(netconf: Mapping[str, Any], valid_attachments: Iterable[Mapping[str, str] | tuple[str, str]],
       cni_path: str | Sequence[str] = "", node_netns: str | None = None) -> None:
    """Sends both keys, as libcni does (the spec-v1.1.0 erratum). Runs every plugin and
    raises the first error after all ran."""
    items = [dict(v) if isinstance(v, Mapping) else {"containerID": v[0], "ifname": v[1]}
             for v in valid_attachments]
    if not cni_path:
        cni_path = default_cni_path()
    first: CniError | None = None
    for p in _plugins(netconf):
        conf = copy.deepcopy(p)
        conf["cni.dev/valid-attachments"] = items
        conf["cni.dev/attachments"] = items
        try:
            _call(conf, "GC", _path(cni_path), node_netns=node_netns)
        except CniError as e:
            first = first or e
    if first:
        raise first


def version(plugin_type: str, cni_path: str | Sequence[str], cni_version: str = "1.1.0") -> dict[str, Any]:
    binary = find_plugin(plugin_type, _path(cni_path).split(os.pathsep))
    return exec_plugin(binary, {"CNI_COMMAND": "VERSION"},
                       json.dumps({"cniVersion": cni_version}).encode()) or {}


def default_cni_path() -> str:
    """podnet's thin launchers (cni/bin: `python -I -S` clients of the node daemon, which
    exec the full plugins below when no daemon answers), the venv's bin dir (the full
    podnet-cni, podnet-ipam), then Debian's reference plugins."""
    import sys
    thin = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin")
    usable = os.access(os.path.join(thin, "podnet-cni"), os.X_OK) and os.access("/usr/bin/python3", os.X_OK)
    dirs = [thin] if usable else []  # their interpreter is Debian's python3 (see their #!)
    return os.pathsep.join(dirs + [os.path.dirname(os.path.abspath(sys.executable)), "/usr/lib/cni"])
