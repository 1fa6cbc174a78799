"""Names of the network namespaces tests create: `pnt-<tag>-<random id>`, unique per call.

Tests never use a lab's prefix (`pn-`), so `podnet down --force` of any lab cannot take a
test's namespace, and two test runs on one machine at once never pick the same name.
"""
from __future__ import annotations

import secrets

from podnet.api.defaults import TEST_PREFIX


def unique_netns(tag: str) -> str:
    """A fresh namespace name for `tag` (a few lowercase letters saying what it is for)."""
    return f"{TEST_PREFIX}{tag}-{secrets.token_hex(3)}"
