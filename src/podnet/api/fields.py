"""Field-level checks with Kubernetes' rules: names, label keys and values, ports, IPs,
CIDRs, selectors. Pure. Each `check_*` appends `FieldError`s to a list and returns the
value in a usable form (or None), so a validator reports every problem, not the first.

The name rules are Kubernetes' own (k8s.io/apimachinery/pkg/util/validation):
DNS-1123 label (63, `[a-z0-9]([-a-z0-9]*[a-z0-9])?`), DNS-1123 subdomain (253, labels
joined by dots), DNS-1035 label (a label that starts with a letter: Service names),
qualified names for label/annotation keys (`prefix/name`), IANA service names for named
ports (15, lowercase letters, digits and '-', at least one letter).
"""
from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, Mapping

from podnet.api.errors import FieldError
from podnet.api.selector import OPERATORS

Errs = list[FieldError]

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QNAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_IANA = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")

PROTOCOLS = ("TCP", "UDP", "SCTP")

MSG_LABEL = ("is not a valid DNS-1123 label (lowercase letters, digits and '-', "
             "starting and ending with a letter or digit, at most 63 characters)")
MSG_1035 = ("is not a valid DNS-1035 label (lowercase letters, digits and '-', "
            "starting with a letter, ending with a letter or digit, at most 63 characters)")
MSG_SUBDOMAIN = ("is not a valid DNS-1123 subdomain (lowercase letters, digits, '-' and '.', "
                 "starting and ending with a letter or digit, at most 253 characters)")


def show(v: Any) -> str:
    """A value as the user wrote it: strings quoted, numbers and booleans as in JSON."""
    try:
        return json.dumps(v, sort_keys=True)
    except (TypeError, ValueError):
        return repr(v)


def at(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, Mapping):
        return "an object"
    return type(v).__name__


# ---- shapes ---------------------------------------------------------------------------
def check_map(v: Any, path: str, errs: Errs, required: bool = False) -> Mapping[str, Any]:
    if v is None:
        if required:
            errs.append(FieldError(path, "is required"))
        return {}
    if not isinstance(v, Mapping):
        errs.append(FieldError(path, f"must be an object, not {type_name(v)}"))
        return {}
    return v


def check_list(v: Any, path: str, errs: Errs, required: bool = False) -> list[Any]:
    if v is None:
        if required:
            errs.append(FieldError(path, "is required"))
        return []
    if not isinstance(v, list):
        errs.append(FieldError(path, f"must be a list, not {type_name(v)}"))
        return []
    if required and not v:
        errs.append(FieldError(path, "must not be empty"))
    return v


def check_str(v: Any, path: str, errs: Errs, required: bool = False) -> str | None:
    if v is None or (required and v == ""):
        if required:
            errs.append(FieldError(path, "is required"))
        return None
    if not isinstance(v, str):
        errs.append(FieldError(path, f"must be a string, not {type_name(v)} ({show(v)})"))
        return None
    return v


def check_bool(v: Any, path: str, errs: Errs) -> None:
    if v is not None and not isinstance(v, bool):
        errs.append(FieldError(path, f"must be true or false, not {show(v)}"))


def check_int(v: Any, path: str, errs: Errs, lo: int, hi: int | None = None,
              required: bool = False) -> int | None:
    if v is None:
        if required:
            errs.append(FieldError(path, "is required"))
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        errs.append(FieldError(path, f"must be an integer, not {show(v)}"))
        return None
    if v < lo or (hi is not None and v > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        errs.append(FieldError(path, f"{v} is not in {rng}" if hi is not None else f"{v} is not {rng}"))
        return None
    return v


def check_enum(v: Any, path: str, errs: Errs, allowed: tuple[str, ...],
               required: bool = False) -> str | None:
    s = check_str(v, path, errs, required)
    if s is not None and s not in allowed:
        errs.append(FieldError(path, f"{show(s)} is not one of {', '.join(allowed)}"))
        return None
    return s


# ---- names ----------------------------------------------------------------------------
def dns_label_error(s: str) -> str | None:
    return None if len(s) <= 63 and _LABEL.match(s) else MSG_LABEL


def dns1035_error(s: str) -> str | None:
    return None if len(s) <= 63 and _LABEL_1035.match(s) else MSG_1035


def subdomain_error(s: str) -> str | None:
    return None if len(s) <= 253 and _SUBDOMAIN.match(s) else MSG_SUBDOMAIN


def check_name(v: Any, path: str, errs: Errs, rule: str, required: bool = False) -> str | None:
    """rule: 'label' | 'dns1035' | 'subdomain'."""
    s = check_str(v, path, errs, required)
    if s is None or s == "":
        return s
    err = {"label": dns_label_error, "dns1035": dns1035_error, "subdomain": subdomain_error}[rule](s)
    if err:
        errs.append(FieldError(path, f"{show(s)} {err}"))
        return None
    return s


def qualified_name_error(key: str) -> str | None:
    """Label/annotation key: optional DNS-1123 subdomain prefix + '/' + a name of at most
    63 characters (alphanumerics, '-', '_', '.', starting and ending alphanumeric)."""
    prefix, sep, name = key.rpartition("/")
    if sep:
        if not prefix:
            return "has an empty prefix before '/'"
        if subdomain_error(prefix):
            return f"has an invalid prefix {show(prefix)}: must be a DNS-1123 subdomain"
    if not name:
        return "has an empty name part"
    if len(name) > 63:
        return "name part is longer than 63 characters"
    if not _QNAME.match(name):
        return ("name part must consist of alphanumerics, '-', '_' or '.', "
                "starting and ending with an alphanumeric")
    return None


def label_value_error(value: str) -> str | None:
    if value == "":
        return None
    if len(value) > 63:
        return "is longer than 63 characters"
    if not _QNAME.match(value):
        return ("must be empty or consist of alphanumerics, '-', '_' or '.', "
                "starting and ending with an alphanumeric")
    return None


def check_labels(v: Any, path: str, errs: Errs, values_too: bool = True) -> dict[str, str]:
    m = check_map(v, path, errs)
    out: dict[str, str] = {}
    for k, val in m.items():
        if not isinstance(k, str):
            errs.append(FieldError(path, f"key {show(k)} must be a string"))
            continue
        kerr = qualified_name_error(k)
        if kerr:
            errs.append(FieldError(path, f"key {show(k)} {kerr}"))
        p = at(path, k)
        if not isinstance(val, str):
            errs.append(FieldError(p, f"must be a string, not {type_name(val)} ({show(val)}); quote it"))
            continue
        if values_too:
            verr = label_value_error(val)
            if verr:
                errs.append(FieldError(p, f"{show(val)} {verr}"))
                continue
        out[k] = val
    return out


def check_port_name(v: Any, path: str, errs: Errs) -> str | None:
    """IANA service name, as named container ports and named targetPorts use."""
    s = check_str(v, path, errs)
    if not s:
        return s
    if len(s) > 15:
        errs.append(FieldError(path, f"{show(s)} is longer than 15 characters"))
    elif not _IANA.match(s) or "--" in s:
        errs.append(FieldError(path, f"{show(s)} must consist of lowercase letters, digits and "
                                     "'-' (not at either end, never '--')"))
    elif not re.search(r"[a-z]", s):
        errs.append(FieldError(path, f"{show(s)} must contain at least one letter"))
    else:
        return s
    return None


def check_int_or_port_name(v: Any, path: str, errs: Errs) -> int | str | None:
    """A port given as a number 1..65535 or as a container port name."""
    if isinstance(v, str):
        return check_port_name(v, path, errs)
    return check_int(v, path, errs, 1, 65535)


def check_protocol(v: Any, path: str, errs: Errs) -> str:
    return check_enum(v, path, errs, PROTOCOLS) or "TCP"


# ---- addresses ------------------------------------------------------------------------
def check_ip(v: Any, path: str, errs: Errs) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    s = check_str(v, path, errs)
    if s is None:
        return None
    try:
        return ipaddress.ip_address(s)
    except ValueError:
        errs.append(FieldError(path, f"{show(s)} is not a valid IP address"))
        return None


def check_cidr(v: Any, path: str, errs: Errs, required: bool = False,
               strict: bool = True) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    s = check_str(v, path, errs, required)
    if s is None:
        return None
    if "/" not in s:
        errs.append(FieldError(path, f"{show(s)} is not a CIDR (expected address/prefix, e.g. 10.0.0.0/16)"))
        return None
    try:
        net = ipaddress.ip_network(s, strict=False)
    except ValueError:
        errs.append(FieldError(path, f"{show(s)} is not a valid CIDR"))
        return None
    if strict and net.network_address != ipaddress.ip_address(s.split("/")[0]):
        errs.append(FieldError(path, f"{show(s)} has host bits set (did you mean {net}?)"))
        return None
    return net


# ---- selectors ------------------------------------------------------------------------
def check_selector(v: Any, path: str, errs: Errs) -> None:
    """A metav1.LabelSelector: matchLabels and matchExpressions."""
    m = check_map(v, path, errs)
    for k in m:
        if k not in ("matchLabels", "matchExpressions"):
            errs.append(FieldError(at(path, str(k)), "unknown field (a label selector has "
                                                     "matchLabels and matchExpressions)"))
    check_labels(m.get("matchLabels"), at(path, "matchLabels"), errs)
    for i, e in enumerate(check_list(m.get("matchExpressions"), at(path, "matchExpressions"), errs)):
        p = at(at(path, "matchExpressions"), i)
        e = check_map(e, p, errs, required=True)
        if not e:
            continue
        key = check_str(e.get("key"), at(p, "key"), errs, required=True)
        if key:
            kerr = qualified_name_error(key)
            if kerr:
                errs.append(FieldError(at(p, "key"), f"{show(key)} {kerr}"))
        op = check_enum(e.get("operator"), at(p, "operator"), errs, OPERATORS, required=True)
        values = check_list(e.get("values"), at(p, "values"), errs)
        if op in ("In", "NotIn") and not values:
            errs.append(FieldError(at(p, "values"), f"must be non-empty when operator is {op}"))
        if op in ("Exists", "DoesNotExist") and values:
            errs.append(FieldError(at(p, "values"), f"must be empty when operator is {op}"))
        for j, val in enumerate(values):
            s = check_str(val, at(at(p, "values"), j), errs)
            if s is not None and label_value_error(s):
                errs.append(FieldError(at(at(p, "values"), j), f"{show(s)} {label_value_error(s)}"))
