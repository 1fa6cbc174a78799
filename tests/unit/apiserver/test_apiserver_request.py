"""Reading a request: paths, selectors, continue tokens, who may do what. Pure."""
from __future__ import annotations

import pytest

from podnet.apiserver import auth, query
from podnet.apiserver.paths import Target, parse
from podnet.apiserver.status import ApiStatus


@pytest.mark.parametrize("path,want", [
    ("/api/v1/pods", Target("", "v1", "", "pods")),
    ("/api/v1/namespaces/default/pods", Target("", "v1", "default", "pods")),
    ("/api/v1/namespaces/default/pods/web/status", Target("", "v1", "default", "pods", "web", "status")),
    ("/api/v1/namespaces/shop", Target("", "v1", "", "namespaces", "shop")),
    ("/api/v1/namespaces/shop/status", Target("", "v1", "", "namespaces", "shop", "status")),
    ("/apis/apps/v1/namespaces/x/deployments/web/scale", Target("apps", "v1", "x", "deployments", "web", "scale")),
    ("/apis/apps/v1", Target("apps", "v1", "", "")),
    ("/api/v1", Target("", "v1", "", "")),
    ("/apis/apps", None), ("/version", None), ("/", None),
])
def test_paths(path, want):
    assert parse(path) == want


def test_unknown_resource_is_404():
    with pytest.raises(ApiStatus) as e:
        parse("/api/v1/widgets").resource
    assert e.value.code == 404


def obj(name, ns="default", node="n1", phase="Running"):
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"nodeName": node}, "status": {"phase": phase}}


def test_field_selectors():
    terms = query.field_selector("spec.nodeName=n1,status.phase!=Failed", "Pod")
    assert query.fields_match(terms, obj("a"))
    assert not query.fields_match(terms, obj("a", node="n2"))
    assert not query.fields_match(terms, obj("a", phase="Failed"))
    assert query.fields_match(query.field_selector("metadata.name==a", "Service"), obj("a"))
    with pytest.raises(ApiStatus) as e:
        query.field_selector("spec.nodeName=n1", "Service")
    assert e.value.code == 400 and "spec.nodeName" in e.value.message
    with pytest.raises(ApiStatus):
        query.field_selector("nonsense", "Pod")


def test_pages_cover_everything_once():
    items = [obj(f"p{i:02d}", ns) for ns in ("a", "b") for i in range(7)]
    seen, after = [], None
    while True:
        page, cont, remaining = query.page(items, 3, after, 42)
        seen += page
        if not cont:
            break
        rev, after = query.decode_continue(cont)
        assert rev == 42 and remaining == len(items) - len(seen)
    assert seen == items
    with pytest.raises(ApiStatus):
        query.decode_continue("!!garbage")


TOKENS = auth.TokenTable('t-node,system:node:n1,node-n1,"system:nodes"\n'
                         't-sa,system:serviceaccount:default:default,sa,"system:serviceaccounts"\n')


def test_authentication():
    assert auth.authenticate(None, "Bearer t-node", TOKENS).user == "system:node:n1"
    assert auth.authenticate(None, "Bearer nope", TOKENS).anonymous
    assert auth.authenticate(None, None, TOKENS).anonymous
    cert = {"subject": ((("organizationName", "system:masters"),), (("commonName", "admin"),))}
    who = auth.authenticate(cert, "Bearer t-node", TOKENS)
    assert who == auth.Identity("admin", ("system:masters",))


@pytest.mark.parametrize("who,verb,group,plural,sub,name,ok", [
    ("admin", "delete", "", "services", "", "web", True),
    ("node", "list", "", "services", "", "", True),
    ("node", "create", "", "services", "", "x", False),
    ("node", "delete", "networking.k8s.io", "networkpolicies", "", "p", False),
    ("node", "patch", "", "nodes", "", "n1", True),
    ("node", "patch", "", "nodes", "", "n2", False),
    ("node", "update", "", "nodes", "status", "n1", True),
    ("node", "update", "", "pods", "status", "p", True),
    ("node", "update", "", "pods", "", "p", False),
    ("node", "update", "apps", "deployments", "", "d", False),
    ("node", "create", "", "nodes", "", "", True),  # the body names it: node_restriction
    ("node", "create", "", "nodes", "status", "", False),
    ("node", "delete", "", "nodes", "", "n1", False),
    ("node", "create", "podnet.io", "ipamblocks", "", "", True),
    ("node", "update", "podnet.io", "ipamblocks", "", "10-244-0-0-26", True),
    ("node", "delete", "podnet.io", "ipamblocks", "", "10-244-0-0-26", True),
    ("node", "create", "podnet.io", "ippools", "", "", False),
    ("node", "update", "podnet.io", "serviceipallocations", "", "x", False),
    ("sa", "create", "podnet.io", "ipamblocks", "", "", False),
    ("sa", "watch", "", "pods", "", "", True),
    ("sa", "create", "", "pods", "", "p", False),
])
def test_authorization_table(who, verb, group, plural, sub, name, ok):
    ident = {"admin": auth.Identity("admin", ("system:masters",)),
             "node": TOKENS.lookup("t-node"), "sa": TOKENS.lookup("t-sa")}[who]
    assert auth.allowed(ident, verb, group, plural, sub, name) == ok
    if not ok:
        with pytest.raises(ApiStatus) as e:
            auth.check(ident, verb, group, plural, sub, name, "default")
        assert e.value.code == 403 and f'User "{ident.user}"' in e.value.message


def test_a_node_creates_only_its_own_node():
    """NodeRestriction: the name of a created Node is in the body, checked once it is read."""
    node, admin = TOKENS.lookup("t-node"), auth.Identity("admin", ("system:masters",))
    auth.node_restriction(node, "nodes", "create", {"metadata": {"name": "n1"}})
    for body in ({"metadata": {"name": "n2"}}, {"metadata": {}}, {}):
        with pytest.raises(ApiStatus) as e:
            auth.node_restriction(node, "nodes", "create", body)
        assert e.value.code == 403 and 'node "n1" is not allowed to modify node' in e.value.message
    auth.node_restriction(admin, "nodes", "create", {"metadata": {"name": "n2"}})
    auth.node_restriction(node, "ipamblocks", "create", {"metadata": {"name": "b"}})


def test_anonymous_is_401_except_public_info():
    with pytest.raises(ApiStatus) as e:
        auth.check(auth.ANONYMOUS, "get", "", "pods", "", "x", "default")
    assert e.value.code == 401
    auth.check_path(auth.ANONYMOUS, "/version")
    with pytest.raises(ApiStatus):
        auth.check_path(auth.ANONYMOUS, "/api")


def test_can_i_and_whoami_answer_from_the_table():
    from podnet.apiserver import reviews
    from podnet.apiserver.resources import for_kind
    node = TOKENS.lookup("t-node")
    ask = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
           "spec": {"resourceAttributes": {"verb": "delete", "resource": "services", "namespace": "default"}}}
    assert reviews.answer(node, for_kind("SelfSubjectAccessReview"), ask)["status"]["allowed"] is False
    ask["spec"]["resourceAttributes"]["verb"] = "list"
    assert reviews.answer(node, for_kind("SelfSubjectAccessReview"), ask)["status"]["allowed"] is True
    who = reviews.answer(node, for_kind("SelfSubjectReview"), {})
    assert who["status"]["userInfo"] == {"username": "system:node:n1", "groups": ["system:nodes"]}


@pytest.mark.parametrize("params,code", [
    ({}, None), ({"resourceVersion": "0"}, None), ({"resourceVersion": "5"}, None),
    ({"resourceVersion": "5", "resourceVersionMatch": "NotOlderThan"}, None),
    ({"resourceVersion": "9", "resourceVersionMatch": "Exact"}, None),
    ({"resourceVersion": "5", "resourceVersionMatch": "Exact"}, 410),
    ({"resourceVersion": "12"}, 504), ({"resourceVersion": "x"}, 400),
    ({"resourceVersionMatch": "Exact"}, 400), ({"resourceVersion": "5", "resourceVersionMatch": "Sorta"}, 400),
])
def test_list_resource_version_semantics(params, code):
    if code is None:
        query.check_version(params, 9)
    else:
        with pytest.raises(ApiStatus) as e:
            query.check_version(params, 9)
        assert e.value.code == code
