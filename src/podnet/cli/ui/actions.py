"""The web view's blocking work, each a plain function the server runs in a worker thread:
the matrix (`analyze`'s code over the live objects), a cell's explanation, a trace
(`podnet trace`'s `run_trace`), a probe (`podnet probe`'s code, real connections) and
recent flow records (`podnet flows`' per-node query). Bad input raises UserError."""
from __future__ import annotations

import json
import os
import time
from typing import Any, Mapping

from podnet.calc.model import ClusterState
from podnet.cli.errors import UserError
from podnet.cli.policy import PROTOCOLS, predict_tables, probe_sources, probe_tables, tables_json
from podnet.cli.ui import views

MAX_PORTS = 8


def matrix_params(q: Mapping[str, Any]) -> dict[str, Any]:
    """port (repeatable as `port=80,81`), protocol, family, namespace (empty: all)."""
    try:
        ports = [int(p) for p in str(q.get("port") or "80").split(",") if p.strip()]
        family = int(q.get("family") or 4)
    except ValueError:
        raise UserError("port and family are numbers") from None
    if not ports or len(ports) > MAX_PORTS or any(not 0 < p < 65536 for p in ports):
        raise UserError(f"1 to {MAX_PORTS} ports, each 1-65535")
    protocol = str(q.get("protocol") or "TCP").upper()
    if protocol not in PROTOCOLS:
        raise UserError(f"protocol is one of {', '.join(PROTOCOLS)}")
    if family not in (4, 6):
        raise UserError("family is 4 or 6")
    return {"ports": ports, "protocol": protocol, "family": family,
            "namespace": str(q.get("namespace") or "") or None}


def matrix(state: ClusterState, q: Mapping[str, Any]) -> dict[str, Any]:
    """Predicted reachability between the running pods (the ones a probe would use), as
    `podnet analyze -o json` prints it."""
    p = matrix_params(q)
    pods = probe_sources(state.pods, p["namespace"], p["family"])
    return tables_json(predict_tables(state, pods, p["ports"], p["protocol"], p["family"]))


def probe(state: ClusterState, body: Mapping[str, Any]) -> dict[str, Any]:
    """Measured reachability: real connections between the same pods, as `podnet probe`."""
    p = matrix_params(body)
    if os.geteuid() != 0:
        raise UserError("probe needs root (it connects from inside the pods' network namespaces)")
    return tables_json(probe_tables(state.pods, p["namespace"], p["ports"], p["protocol"], p["family"],
                                    timeout=1.0))


def explain(state: ClusterState, q: Mapping[str, Any]) -> dict[str, Any]:
    p = matrix_params(q)
    try:
        return views.explain(state, str(q.get("from") or ""), str(q.get("to") or ""), p["ports"][0],
                             p["protocol"], p["family"])
    except KeyError as e:
        raise UserError(str(e.args[0])) from None


def trace(q: Mapping[str, Any], *, confirm: bool, lab: str | None, datastore: str) -> dict[str, Any]:
    """`podnet trace SRC DST` as JSON, plus the text it prints; `confirm` sends a real packet."""
    from podnet.cli.trace import run_trace
    src, dst = str(q.get("src") or ""), str(q.get("dst") or "")
    if "/" not in src or not dst:
        raise UserError("src is NAMESPACE/POD and dst is a pod, Service, name or address[:PORT[/PROTO]]")
    ns, name = src.split("/", 1)
    ipv6 = str(q.get("ipv6") or "").lower() in ("1", "true", "yes")
    r = run_trace(ns, name, dst, ipv6=ipv6, confirm=confirm, lab=lab, datastore=datastore)
    out: dict[str, Any] = json.loads(r.json())
    out["text"] = r.text()
    return out


def flows(lab: str | None, q: Mapping[str, Any], limit: int = 500) -> dict[str, Any]:
    """Recent flow records of every node, merged by time and filtered as `podnet flows`
    filters them (since, namespace (empty: all), pod, from, to, port, verdict, policy)."""
    from podnet.agent import flow_query as fl
    from podnet.agent.flow_server import query
    from podnet.cli.flows import node_namespaces
    now = time.time()
    try:
        since = fl.parse_since(str(q.get("since") or "5m"), now)
        port = int(q.get("port") or 0)
    except ValueError as e:
        raise UserError(str(e)) from None
    verdict = str(q.get("verdict") or "")
    if verdict and verdict not in fl.VERDICTS:
        raise UserError(f"verdict is one of {', '.join(fl.VERDICTS)}")
    flt = fl.Filter(str(q.get("namespace") or "") or None, str(q.get("pod") or ""), str(q.get("from") or ""),
                    str(q.get("to") or ""), port, verdict, str(q.get("policy") or ""))
    if os.geteuid() != 0:
        raise UserError("flows needs root (it asks each node's agent inside the node's namespace)")
    streams, missing = [], []
    for node, ns in node_namespaces(lab):
        try:
            _stats, recs = query(ns, since, follow=False)
        except OSError as e:
            missing.append(f"{node}: {e}")
            continue
        streams.append(list(recs))
    records = [dict(r, why=fl.describe(r)) for r in fl.merge_by_time(streams) if flt.match(r)][-limit:]
    return {"records": records, "missing": missing, "now": now}
