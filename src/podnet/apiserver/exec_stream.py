"""`kubectl exec` into a lab pod: the websocket channel protocol (v5.channel.k8s.io, v4).

Every binary message starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 the final
metav1.Status (Success, or NonZeroExitCode with the exit code as a cause), 4 terminal
resize (ignored: no tty); v5 adds 255 + channel to close one stream (stdin's end). In a
lab every pod is a network namespace on this machine (annotation podnet.io/netns), so
the command runs here inside it (`ip netns exec`, as `podnet exec` does) with the pod's
network and the machine's filesystem, plus what Kubernetes gives a pod's process: the
KUBERNETES_SERVICE_* variables and, in the command's private mount namespace, its service
account's token, the cluster CA and its namespace under SA_DIR, so in-cluster clients
(`kubernetes.config.load_incluster_config()`, kubectl) work from inside. Only a server started with exec allowed (the
lab's) serves it, and only the table's admins may (pods/exec).
"""
from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from typing import Any, Mapping

from aiohttp import WSMsgType, web

from podnet.api.defaults import NETNS_ANNOTATION
from podnet.apiserver.status import ApiStatus

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# Inside `ip netns exec`'s private mount namespace: a tmpfs over the deepest existing
# directory of SA_DIR (nothing is created on the machine's filesystem), the three files of
# a service account as the kubelet mounts them, then the command itself.
_SA_SCRIPT = r"""
d=/var/run/secrets/kubernetes.io/serviceaccount
m=$d; while [ ! -d "$m" ] && [ "$m" != /var/run ]; do m=$(dirname "$m"); done
if [ -n "$PODNET_SA_TOKEN" ] && [ "$m" != /var/run ] && mount -t tmpfs -o size=1m,mode=0755 podnet-sa "$m" 2>/dev/null; then
  mkdir -p "$d" && printf %s "$PODNET_SA_TOKEN" > "$d/token" && printf %s "$PODNET_SA_CA" > "$d/ca.crt" \
    && printf %s "$PODNET_SA_NS" > "$d/namespace"
fi
unset PODNET_SA_TOKEN PODNET_SA_CA PODNET_SA_NS
exec "$@"
"""


@dataclass(frozen=True)
class PodEnv:
    namespace: str
    token: str = ""
    ca_pem: str = ""
    service_host: str = ""
    service_port: int = 0

    def variables(self) -> dict[str, str]:
        out = {"PODNET_SA_NS": self.namespace, "PODNET_SA_TOKEN": self.token, "PODNET_SA_CA": self.ca_pem}
        if self.service_host and self.service_port:
            h, p = self.service_host, str(self.service_port)
            url = f"tcp://[{h}]:{p}" if ":" in h else f"tcp://{h}:{p}"
            out.update(KUBERNETES_SERVICE_HOST=h, KUBERNETES_SERVICE_PORT=p, KUBERNETES_SERVICE_PORT_HTTPS=p,
                       KUBERNETES_PORT=url, KUBERNETES_PORT_443_TCP=url)
        return out
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
NETNS_DIR = "/var/run/netns"


def command_of(q: Any) -> list[str]:
    cmd = [str(c) for c in q.getall("command", [])]
    if not cmd:
        raise ApiStatus(400, "you must specify at least 1 command")
    return cmd


def netns_of(pod: Mapping[str, Any], container: str) -> str:
    md, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    names = [c.get("name") for c in spec.get("containers") or []]
    if container and container not in names:
        raise ApiStatus(400, f"container {container} is not valid for pod {md.get('name')}")
    ns = (md.get("annotations") or {}).get(NETNS_ANNOTATION)
    if not ns or (pod.get("status") or {}).get("phase") != "Running":
        raise ApiStatus(400, f"unable to upgrade connection: pod {md.get('name')} is not running "
                             f"(phase {(pod.get('status') or {}).get('phase') or 'Pending'})")
    if "/" in ns or not os.path.exists(os.path.join(NETNS_DIR, ns)):
        raise ApiStatus(400, f"pod {md.get('name')}: its network namespace {ns} is gone")
    return str(ns)


def exit_status(code: int) -> dict[str, Any]:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def argv(netns: str, cmd: list[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, "sh", "-c", _SA_SCRIPT, "podnet-exec", *cmd]


async def serve(request: web.Request, pod: Mapping[str, Any], env: PodEnv) -> web.WebSocketResponse:
    q = request.query
    cmd = command_of(q)
    netns = netns_of(pod, q.get("container", ""))
    want_stdin = q.get("stdin") in ("1", "true")
    ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=1 << 20)
    await ws.prepare(request)
    v5 = ws.ws_protocol == PROTOCOLS[0]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv(netns, cmd), stdin=asyncio.subprocess.PIPE if want_stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **env.variables()})
    except OSError as e:
        await ws.send_bytes(bytes([ERROR]) + json.dumps(exit_status(126) | {"message": str(e)}).encode())
        await ws.close()
        return ws

    async def pump(stream: asyncio.StreamReader | None, channel: int) -> None:
        while stream is not None:
            data = await stream.read(32768)
            if not data:
                return
            await ws.send_bytes(bytes([channel]) + data)

    async def feed() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            ch, data = msg.data[0], msg.data[1:]
            if ch == STDIN and proc.stdin is not None:
                proc.stdin.write(data)
                await proc.stdin.drain()
            elif v5 and ch == CLOSE and data[:1] == bytes([STDIN]) and proc.stdin is not None:
                proc.stdin.close()
        if proc.returncode is None:  # the client went away
            proc.kill()

    feeder = asyncio.create_task(feed())
    try:
        await asyncio.gather(pump(proc.stdout, STDOUT), pump(proc.stderr, STDERR))
        code = await proc.wait()
        await ws.send_bytes(bytes([ERROR]) + json.dumps(exit_status(code)).encode())
    except (ConnectionResetError, asyncio.CancelledError):
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    finally:
        feeder.cancel()
        await ws.close()
    return ws
