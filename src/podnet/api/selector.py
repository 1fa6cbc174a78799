"""Kubernetes label selectors with Kubernetes semantics. Pure.

A `LabelSelector` built from `{}` selects everything; `None` (a missing selector)
is represented by `LabelSelector.nothing()` and selects nothing. Which of the two a
missing field means depends on the field (NetworkPolicy.podSelector: required, `{}`
means all pods; a peer's missing namespaceSelector: "this namespace"), so callers
decide; this module only evaluates.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            # Kubernetes: NotIn matches when the key is absent too.
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        raise ValueError(f"unknown selector operator {self.operator!r}")


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()
    selects_nothing: bool = False
    raw: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    @classmethod
    def nothing(cls) -> "LabelSelector":
        return cls(selects_nothing=True)

    @classmethod
    def everything(cls) -> "LabelSelector":
        return cls(raw={})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "LabelSelector":
        """metav1.LabelSelector: matchLabels AND matchExpressions. `None` selects nothing."""
        if d is None:
            return cls.nothing()
        reqs: list[Requirement] = []
        for k, v in sorted((d.get("matchLabels") or {}).items()):
            reqs.append(Requirement(str(k), "In", (str(v),)))
        for e in d.get("matchExpressions") or []:
            reqs.append(Requirement(str(e.get("key", "")), str(e.get("operator", "")),
                                    tuple(str(x) for x in (e.get("values") or []))))
        return cls(tuple(reqs), raw=d)

    @classmethod
    def from_map(cls, m: Mapping[str, str] | None) -> "LabelSelector":
        """A Service's `spec.selector`: a plain map; Kubernetes treats empty/missing as
        "no selector" (endpoints managed by the user), so this returns nothing()."""
        if not m:
            return cls.nothing()
        return cls(tuple(Requirement(str(k), "In", (str(v),)) for k, v in sorted(m.items())), raw=m)

    @classmethod
    def parse(cls, text: str) -> "LabelSelector":
        """kubectl's `-l` syntax: `a=b,c!=d,e in (x,y),f notin (z),g,!h`."""
        reqs: list[Requirement] = []
        for part in _split_top(text):
            part = part.strip()
            if not part:
                continue
            low = part.lower()
            if " notin " in low or " in " in low:
                op = "NotIn" if " notin " in low else "In"
                idx = low.index(" notin " if op == "NotIn" else " in ")
                key = part[:idx].strip()
                rest = part[idx:].strip()[len("notin") if op == "NotIn" else len("in"):].strip()
                if not (rest.startswith("(") and rest.endswith(")")):
                    raise ValueError(f"bad selector term {part!r}: expected ( values )")
                vals = tuple(v.strip() for v in rest[1:-1].split(",") if v.strip())
                reqs.append(Requirement(key, op, vals))
            elif "!=" in part:
                k, v = part.split("!=", 1)
                reqs.append(Requirement(k.strip(), "NotIn", (v.strip(),)))
            elif "==" in part or "=" in part:
                k, v = part.split("==", 1) if "==" in part else part.split("=", 1)
                reqs.append(Requirement(k.strip(), "In", (v.strip(),)))
            elif part.startswith("!"):
                reqs.append(Requirement(part[1:].strip(), "DoesNotExist"))
            else:
                reqs.append(Requirement(part, "Exists"))
        return cls(tuple(reqs), raw={"expr": text})

    @property
    def is_everything(self) -> bool:
        return not self.selects_nothing and not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.selects_nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        if self.selects_nothing:
            return "<none>"
        if not self.requirements:
            return "<all>"
        out = []
        for r in self.requirements:
            if r.operator == "In" and len(r.values) == 1:
                out.append(f"{r.key}={r.values[0]}")
            elif r.operator == "In":
                out.append(f"{r.key} in ({','.join(r.values)})")
            elif r.operator == "NotIn":
                out.append(f"{r.key} notin ({','.join(r.values)})")
            elif r.operator == "Exists":
                out.append(r.key)
            else:
                out.append(f"!{r.key}")
        return ",".join(out)


_CALICO_MARKERS = ("has(", "all()", "'", '"', "{", "&&", "||")
_Q = r"""['"]([^'"]*)['"]"""
_CALICO_TERMS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], Requirement]], ...] = (
    (re.compile(r"^has\(\s*([^)\s]+)\s*\)$"), lambda m: Requirement(m[1], "Exists")),
    (re.compile(r"^!\s*has\(\s*([^)\s]+)\s*\)$"), lambda m: Requirement(m[1], "DoesNotExist")),
    (re.compile(r"^([^\s=!]+)\s*==\s*" + _Q + "$"), lambda m: Requirement(m[1], "In", (m[2],))),
    (re.compile(r"^([^\s=!]+)\s*!=\s*" + _Q + "$"), lambda m: Requirement(m[1], "NotIn", (m[2],))),
    (re.compile(r"^(\S+)\s+(not\s+)?in\s*\{([^}]*)\}$"),
     lambda m: Requirement(m[1], "NotIn" if m[2] else "In",
                           tuple(v.strip().strip("'\"") for v in m[3].split(",") if v.strip()))),
)


def parse_calico(text: str) -> LabelSelector:
    """Calico's selector expressions as IPPool.nodeSelector uses them: `all()`, `has(k)`,
    `!has(k)`, `k == 'v'`, `k != 'v'`, `k in {'a','b'}`, `k not in {...}`, joined by `&&`.
    Text without Calico syntax is read as kubectl's `-l` syntax. Raises ValueError."""
    expr = text.strip()
    if not any(m in expr for m in _CALICO_MARKERS):
        return LabelSelector.parse(expr)
    if "||" in expr:
        raise ValueError("'||' is not supported in a node selector")
    reqs: list[Requirement] = []
    for term in (t.strip() for t in expr.split("&&")):
        if term == "all()":
            continue
        for rx, build in _CALICO_TERMS:
            m = rx.match(term)
            if m:
                reqs.append(build(m))
                break
        else:
            raise ValueError(f"unsupported selector term {term!r}")
    return LabelSelector(tuple(reqs), raw={"expr": text})


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts
