"""ulogd2 as the node's reader of the kernel's flow events (issue 18 §1): its config, and
the process, started in the calling process's network namespace (the node's).

Why ulogd2 (Debian `ulogd2` + `ulogd2-json`), not a parser of our own: it is the
netfilter project's own logging daemon, reads nflog (the `log group` statements of
podnet's rules) and conntrack events with libnetfilter_log/_conntrack, and writes one
JSON object per event. pyroute2 reads conntrack but has no nflog socket. Both stacks
write to ulogd's stdout, a pipe the agent reads (one line per write with `sync=1`, under
PIPE_BUF, so the two stacks' lines never interleave).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from podnet.dataplane.nft import flowlog

PLUGIN_DIRS = ("/usr/lib/x86_64-linux-gnu/ulogd", "/usr/lib/aarch64-linux-gnu/ulogd", "/usr/lib/ulogd")
PLUGINS = ("inppkt_NFLOG", "inpflow_NFCT", "raw2packet_BASE", "filter_IFINDEX", "filter_IP2STR", "output_JSON")


OVERRUN = b"losing events"  # what ulogd says when the kernel could not queue a message for it


def plugin_dir() -> str | None:
    return next((d for d in PLUGIN_DIRS if os.path.exists(os.path.join(d, "ulogd_output_JSON.so"))), None)


def available() -> bool:
    return shutil.which("ulogd") is not None and plugin_dir() is not None


def config(plugins: str, group: int = flowlog.GROUP, conntrack: bool = True,
           bufsize: int = 4 << 20) -> str:
    """Two stacks: nflog `group` and (when `conntrack`) conntrack NEW and DESTROY events
    (the DESTROY carries the connection's counters: agent/flow_accounting.py), both as JSON
    on stdout. Socket buffers are large so a burst waits in the kernel, not lost there."""
    lines = ["[global]", 'logfile="stdout"', "loglevel=5"]  # notices: "losing events" (kernel overruns)
    lines += [f'plugin="{plugins}/ulogd_{p}.so"' for p in PLUGINS]
    lines.append("stack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,json1:JSON")
    if conntrack:
        lines.append("stack=ct1:NFCT,ip2str2:IP2STR,json2:JSON")
    lines += ["[log1]", f"group={group}", "netlink_qthreshold=1",
              f"netlink_socket_buffer_size={bufsize}", f"netlink_socket_buffer_maxsize={bufsize}"]
    lines += ["[ct1]", "hash_enable=0", "event_mask=0x00000005",
              f"netlink_socket_buffer_size={bufsize}", f"netlink_socket_buffer_maxsize={bufsize}"]
    for j in ("json1", "json2"):
        lines += [f"[{j}]", "sync=1", 'file="/dev/stdout"']
    return "\n".join(lines) + "\n"


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG: an agent that dies (even by SIGKILL) takes its ulogd along."""
    import ctypes
    import signal
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def start(conntrack: bool = True) -> tuple[subprocess.Popen[bytes], str]:
    """ulogd in the foreground, its JSON on the returned process's stdout; the caller owns
    the process (terminate it by its pid) and the config file (remove it)."""
    plugins = plugin_dir()
    if plugins is None or shutil.which("ulogd") is None:
        raise FileNotFoundError("ulogd2 with its JSON plugin (Debian ulogd2, ulogd2-json) is not installed")
    fd, path = tempfile.mkstemp(prefix="podnet-ulogd-", suffix=".conf")
    with os.fdopen(fd, "w") as f:
        f.write(config(plugins, conntrack=conntrack))
    proc = subprocess.Popen(["ulogd", "-c", path], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            preexec_fn=_die_with_parent)
    if proc.stdout is not None:
        _grow_pipe(proc.stdout.fileno())
    return proc, path


def _grow_pipe(fd: int, size: int = 1 << 20) -> None:
    """A 1 MiB pipe (F_SETPIPE_SZ; 64 KiB by default) holds ~1,000 events while the agent's
    reader is busy, so a burst waits here instead of overflowing the kernel's queue."""
    import fcntl
    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except OSError:
        pass  # above fs.pipe-max-size: the default pipe still works
