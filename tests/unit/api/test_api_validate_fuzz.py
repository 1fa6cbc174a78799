"""Whatever a user writes, validation answers with messages, never an exception."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from podnet.api.errors import FieldError
from podnet.api.objects import KINDS, from_dict
from podnet.api.validate import validate_object

FIELDS = st.sampled_from(["ports", "port", "targetPort", "nodePort", "protocol", "name", "selector",
                          "matchLabels", "matchExpressions", "key", "operator", "values", "cidr",
                          "blockSize", "clusterIP", "clusterIPs", "ipFamilies", "type", "containers",
                          "ingress", "egress", "from", "to", "ipBlock", "except", "endPort",
                          "podSelector", "namespaceSelector", "template", "metadata", "labels",
                          "spec", "replicas", "dnsConfig", "nameservers", "endpoints", "addresses",
                          "sessionAffinityConfig", "clientIP", "timeoutSeconds", "nodeSelector"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.floats(allow_nan=False),
                    st.sampled_from(["", "x", "TCP", "In", "None", "10.0.0.0/8", "fd00::/64", "http",
                                     "NodePort", "ExternalName", "1.2.3.4", "a/b", "Exists"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(FIELDS, inner, max_size=4)),
                      max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(KINDS)), VALUES, VALUES)
def test_validation_never_raises(kind, spec, metadata):
    d = {"apiVersion": KINDS[kind][0], "kind": kind, "metadata": metadata, "spec": spec}
    if kind == "EndpointSlice" and isinstance(spec, dict):
        d.update(spec)
    errs = validate_object(from_dict(d))
    assert all(isinstance(e, FieldError) and isinstance(e.message, str) for e in errs)
