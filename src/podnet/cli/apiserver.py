"""`podnet apiserver` (the Kubernetes API over the datastore) and `podnet kubeconfig`.

Thin: parse, call podnet.apiserver.server / podnet.lab.apiserver, print.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from podnet.cli import context
from podnet.cli.errors import UserError


def cmd_apiserver(args: argparse.Namespace) -> int:
    from podnet.apiserver.server import Config, run
    if not args.listen and not args.listen_fd:
        raise UserError("give --listen HOST:PORT (or --listen-fd N)")
    run(Config(context.datastore_url(args), Path(args.cert), Path(args.key), Path(args.client_ca),
               Path(args.token_file) if args.token_file else None, args.listen, args.listen_fd,
               args.advertise or "", args.allow_exec,
               Path(args.service_account_key) if args.service_account_key else None,
               _lab_logs(args.lab_state) if args.lab_state else None))
    return 0


def _lab_logs(state_dir: str) -> Any:
    """kubectl logs in a lab: a container with a command writes to the lab's log files."""
    from podnet.api.defaults import NETNS_ANNOTATION
    from podnet.lab.containers import log_path
    from podnet.lab.state import LabState
    state = LabState(Path(state_dir))

    def locate(pod: Any, container: str) -> Path | None:
        md = pod.get("metadata") or {}
        netns = (md.get("annotations") or {}).get(NETNS_ANNOTATION)
        return log_path(state, str(netns), str(md.get("name")), container) if netns else None
    return locate
    return 0


def cmd_kubeconfig(args: argparse.Namespace) -> int:
    import yaml

    from podnet.lab.apiserver import ApiServerError, kubeconfig
    from podnet.lab.state import LabState
    name = args.name or context.current_lab()
    if not name:
        raise UserError("no current lab: give --name NAME")
    state = LabState(context.lab_dir(name))
    server = (state.read_meta().get("apiserver") or {}).get("server")
    if not server:
        raise UserError(f"lab {name!r} has no API server (is it up? see `podnet labs`)")
    try:
        sys.stdout.write(yaml.safe_dump(kubeconfig(state, name, server, args.node), sort_keys=False))
    except (ApiServerError, OSError) as e:
        raise UserError(str(e)) from None
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("apiserver", help="serve the Kubernetes API over the datastore (HTTPS)")
    p.add_argument("--listen", action="append", default=[], help="HOST:PORT to listen on (repeat)")
    p.add_argument("--listen-fd", action="append", type=int, default=[],
                   help="an inherited listening socket to serve too (repeat)")
    p.add_argument("--cert", required=True, help="serving certificate (PEM)")
    p.add_argument("--key", required=True, help="its key (PEM)")
    p.add_argument("--client-ca", required=True, help="CA that signs client certificates")
    p.add_argument("--token-file", help="static bearer tokens: token,user,uid,\"group1,group2\"")
    p.add_argument("--advertise", help="the address clients are told to use (HOST:PORT)")
    p.add_argument("--service-account-key", help="a secret file: signs and checks the service "
                                                 "account tokens given to pods")
    p.add_argument("--lab-state", help="the lab's state dir: kubectl logs reads its containers' logs")
    p.add_argument("--allow-exec", action="store_true",
                   help="serve kubectl exec by running the command in the pod's network namespace "
                        "on this machine (a lab's pods)")
    p.set_defaults(func=cmd_apiserver)

    p = sub.add_parser("kubeconfig", help="print the kubeconfig of a lab's API server")
    p.add_argument("--name", help="lab name (default: the current lab)")
    p.add_argument("--node", help="a node identity's kubeconfig (bearer token) instead of the admin's")
    p.set_defaults(func=cmd_kubeconfig)
