"""Truth tables of reachability (who may connect to whom), as the Kubernetes e2e
network-policy tests print them, plus the e2e model and deterministic pod addresses. Pure.

A `TruthTable` is rows = sources, columns = destinations, cells True (allowed, `.`),
False (denied, `X`) or None (untestable, `?`, e.g. SCTP on a kernel without it).
`predict()` fills one from the policy predicate; `podnet probe` fills one from real
connections; tests compare the two cell by cell.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Iterable

from podnet.api.defaults import POD_CIDR_V4, POD_CIDR_V6
from podnet.api.objects import Namespace, Pod, Resource, from_dict
from podnet.calc.model import ClusterState
from podnet.calc.policy.predicate import allowed, pod_by_ip

PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass
class TruthTable:
    rows: list[str]
    cols: list[str]
    cells: dict[tuple[str, str], bool | None] = field(default_factory=dict)
    port: int = 80
    protocol: str = "TCP"

    def get(self, r: str, c: str) -> bool | None:
        return self.cells.get((r, c))

    def text(self, marks: dict[tuple[str, str], str] | None = None) -> str:
        """`.` allowed, `X` denied, `?` untestable; `marks` overrides single cells."""
        sym = {True: ".", False: "X", None: "?"}
        marks = marks or {}
        lines = ["\t".join(["-"] + self.cols)]
        for r in self.rows:
            lines.append("\t".join([r] + [marks.get((r, c)) or sym[self.get(r, c)] for c in self.cols]))
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {"port": self.port, "protocol": self.protocol, "from": self.rows, "to": self.cols,
                "cells": [{"from": r, "to": c, "allowed": self.get(r, c)}
                          for r in self.rows for c in self.cols]}

    def diff(self, other: "TruthTable") -> list[str]:
        """Cells that differ (`from -> to: mine vs other`); untestable cells are skipped."""
        out = []
        for r in self.rows:
            for c in self.cols:
                a, b = self.get(r, c), other.get(r, c)
                if a is not None and b is not None and a != b:
                    out.append(f"{r} -> {c}: {a} vs {b}")
        return out

    @classmethod
    def parse(cls, text: str, port: int = 80, protocol: str = "TCP") -> "TruthTable":
        """Read an expected table written in a test (whitespace-separated, `.`/`X`)."""
        lines = [ln.split() for ln in text.strip().splitlines() if ln.strip()]
        cols = lines[0][1:]
        t = cls([ln[0] for ln in lines[1:]], cols, port=port, protocol=protocol)
        for ln in lines[1:]:
            for c, v in zip(cols, ln[1:]):
                t.cells[(ln[0], c)] = {".": True, "X": False}.get(v)
        return t


def _label(x: Pod | str) -> str:
    return x if isinstance(x, str) else pod_label(x)


def pod_label(p: Pod) -> str:
    return f"{p.namespace}/{p.name}"


def predict(state: ClusterState, port: int, protocol: str = "TCP", family: int = 4,
            sources: Iterable[Pod] | None = None, targets: Iterable[Pod | str] | None = None) -> TruthTable:
    """Predicted table from calc alone; `targets` may include plain addresses (outside)."""
    pods = sorted(state.pods, key=lambda p: (p.namespace, p.name))
    srcs = list(sources) if sources is not None else pods
    dsts = list(targets) if targets is not None else pods
    t = TruthTable([pod_label(p) for p in srcs], [_label(d) for d in dsts], port=port, protocol=protocol)
    by_ip = pod_by_ip(state)
    for s in srcs:
        for d in dsts:
            t.cells[(pod_label(s), _label(d))] = allowed(state, s, d, port, protocol, family, by_ip).allowed
    return t


def assign_ips(objs: list[Resource]) -> list[Resource]:
    """Give pods without status addresses one IPv4 and one IPv6 address, sequentially from
    the default pod CIDRs in (namespace, name) order, skipping the network address. This is
    the documented stand-in for the lab's IPAM when analysing manifests alone."""
    v4 = ipaddress.ip_network(POD_CIDR_V4).network_address
    v6 = ipaddress.ip_network(POD_CIDR_V6).network_address
    pods = sorted((o for o in objs if isinstance(o, Pod) and not o.pod_ips),
                  key=lambda p: (p.namespace, p.name))
    new: dict[tuple[str, str], Resource] = {}
    for i, p in enumerate(pods, start=1):
        st = dict(p.status)
        st["podIPs"] = [{"ip": str(v4 + i)}, {"ip": str(v6 + i)}]
        st["podIP"] = str(v4 + i)
        new[(p.namespace, p.name)] = p.with_status(st)
    return [new.get((o.namespace, o.name), o) if isinstance(o, Pod) else o for o in objs]


E2E_PORTS = (80, 81)


def e2e_model(namespaces: Iterable[str] = ("x", "y", "z"), pods: Iterable[str] = ("a", "b", "c"),
              node: str = "node-1") -> list[Resource]:
    """The upstream e2e model: namespaces x,y,z (label ns=<name>), pods a,b,c in each
    (label pod=<name>) serving 80 and 81 over TCP, UDP and SCTP with named ports
    `serve-<port>-<proto>`. Addresses from `assign_ips`."""
    out: list[Resource] = []
    for ns in namespaces:
        out.append(Namespace({"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": ns, "labels": {"ns": ns}}}))
        for p in pods:
            ports = [{"name": f"serve-{port}-{proto.lower()}", "containerPort": port, "protocol": proto}
                     for port in E2E_PORTS for proto in PROTOCOLS]
            out.append(from_dict({"apiVersion": "v1", "kind": "Pod",
                                  "metadata": {"name": p, "namespace": ns, "labels": {"pod": p}},
                                  "spec": {"nodeName": node, "containers": [
                                      {"name": "c", "image": "podnet/serve", "ports": ports}]}}))
    return assign_ips(out)
