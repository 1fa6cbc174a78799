"""What a node-agent role (service proxy, policy, NAT outgoing, routes) provides.

The agent keeps one `ClusterState` from a list+watch of the store. After a batch of
changes it asks every role for its nftables fragment and applies all fragments in ONE
`nft -f` transaction; a role that manages kernel objects other than nftables (routes)
does that in `apply_kernel`. A failed transaction makes the next sync full.
Each role owns its own nftables table(s) in the node's netns (`inet podnet-svc`,
`inet podnet-pol`, `inet podnet-nat`), so roles never edit each other's chains.
"""
from __future__ import annotations

from typing import Protocol

from podnet.api.objects import ObjectKey
from podnet.calc.model import ClusterState


class Role(Protocol):
    """Every role is checked against this by mypy where the agent holds it (`Agent.roles`)."""

    @property
    def name(self) -> str:
        """Names the role in logs, metrics and the Node's status."""

    @property
    def kinds(self) -> tuple[str, ...]:
        """Kinds whose changes concern this role."""

    def nft_fragment(self, state: ClusterState, changed: set[ObjectKey] | None) -> str:
        """nft script text for this sync. `changed is None` means full sync: re-declare
        the role's tables whole (`table inet X {}` + `flush table inet X`, then everything);
        otherwise touch only what `changed` affects. Return "" when nothing changes.
        Must not raise on bad objects: skip them (and log)."""

    def committed(self, ok: bool) -> None:
        """Called after the transaction: ok=False means forget the rendered state so the
        next call renders a full sync."""

    def apply_kernel(self, state: ClusterState) -> None:
        """Non-nftables kernel work (routes, links). Idempotent."""
