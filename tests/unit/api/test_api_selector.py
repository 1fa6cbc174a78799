"""Label selectors with Kubernetes semantics, checked against a reference evaluation."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from podnet.api.selector import LabelSelector, Requirement

KEYS = st.sampled_from(["app", "tier", "example.com/team", "env"])
VALUES = st.sampled_from(["web", "db", "a.b", "x-1", ""])
LABELS = st.dictionaries(KEYS, VALUES, max_size=4)


@st.composite
def requirements(draw):
    op = draw(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]))
    key = draw(KEYS)
    values = draw(st.lists(VALUES.filter(bool), min_size=1, max_size=3, unique=True)) \
        if op in ("In", "NotIn") else []
    return {"key": key, "operator": op, "values": values}


SELECTORS = st.fixed_dictionaries({}, optional={
    "matchLabels": st.dictionaries(KEYS, VALUES.filter(bool), max_size=2),
    "matchExpressions": st.lists(requirements(), max_size=3),
})


def reference(sel: dict, labels: dict) -> bool:
    """The Kubernetes rules, written out plainly."""
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e["key"], e["operator"], e["values"]
        if op == "In" and not (k in labels and labels[k] in vals):
            return False
        if op == "NotIn" and k in labels and labels[k] in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def to_text(sel: dict) -> str:
    """The same selector in kubectl's -l syntax."""
    parts = [f"{k}={v}" for k, v in (sel.get("matchLabels") or {}).items()]
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e["key"], e["operator"], e["values"]
        parts.append({"In": f"{k} in ({','.join(vals)})", "NotIn": f"{k} notin ({','.join(vals)})",
                      "Exists": k, "DoesNotExist": f"!{k}"}[op])
    return ",".join(parts)


@settings(max_examples=400)
@given(SELECTORS, LABELS)
def test_from_dict_and_parse_agree_with_reference(sel, labels):
    expected = reference(sel, labels)
    assert LabelSelector.from_dict(sel).matches(labels) == expected
    assert LabelSelector.parse(to_text(sel)).matches(labels) == expected


@given(KEYS, st.lists(VALUES.filter(bool), min_size=1, max_size=3), LABELS)
def test_in_and_notin_are_complements(key, values, labels):
    in_ = Requirement(key, "In", tuple(values)).matches(labels)
    notin = Requirement(key, "NotIn", tuple(values)).matches(labels)
    assert in_ != notin


@given(KEYS, LABELS)
def test_exists_and_doesnotexist_are_complements(key, labels):
    assert Requirement(key, "Exists").matches(labels) != Requirement(key, "DoesNotExist").matches(labels)


@given(LABELS)
def test_empty_selects_everything_and_null_selects_nothing(labels):
    assert LabelSelector.from_dict({}).matches(labels)
    assert LabelSelector.parse("").matches(labels)
    assert LabelSelector.everything().matches(labels)
    assert not LabelSelector.from_dict(None).matches(labels)
    assert not LabelSelector.nothing().matches(labels)
    # A Service without a selector selects no pods (its endpoints are managed by hand).
    assert not LabelSelector.from_map({}).matches(labels)


@given(SELECTORS, LABELS)
def test_str_parses_back_to_the_same_meaning(sel, labels):
    s = LabelSelector.from_dict(sel)
    if s.is_everything:
        return
    assert LabelSelector.parse(str(s)).matches(labels) == s.matches(labels)


def test_parse_forms():
    s = LabelSelector.parse("app=web,tier!=db,env in (a, b),team notin (x),release,!canary,x==y")
    assert [(r.key, r.operator, r.values) for r in s.requirements] == [
        ("app", "In", ("web",)), ("tier", "NotIn", ("db",)), ("env", "In", ("a", "b")),
        ("team", "NotIn", ("x",)), ("release", "Exists", ()), ("canary", "DoesNotExist", ()),
        ("x", "In", ("y",))]


def test_calico_node_selector_forms():
    from podnet.api.selector import parse_calico
    s = parse_calico("has(zone) && rack == 'r1' && tier not in {'a', 'b'} && !has(drain)")
    assert s.matches({"zone": "z", "rack": "r1", "tier": "c"})
    assert not s.matches({"zone": "z", "rack": "r1", "tier": "a"})
    assert not s.matches({"zone": "z", "rack": "r1", "drain": ""})
    assert parse_calico("all()").is_everything
    assert parse_calico("kubernetes.io/os in {'linux'}").matches({"kubernetes.io/os": "linux"})
    assert parse_calico("app=web").matches({"app": "web"})  # kubectl syntax still works


@given(SELECTORS, LABELS)
def test_calico_text_agrees_with_reference(sel, labels):
    from podnet.api.selector import parse_calico
    parts = [f"{k} == '{v}'" for k, v in (sel.get("matchLabels") or {}).items()]
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e["key"], e["operator"], e["values"]
        quoted = ", ".join(f"'{v}'" for v in vals)
        parts.append({"In": f"{k} in {{{quoted}}}", "NotIn": f"{k} not in {{{quoted}}}",
                      "Exists": f"has({k})", "DoesNotExist": f"!has({k})"}[op])
    assert parse_calico(" && ".join(parts) or "all()").matches(labels) == reference(sel, labels)
