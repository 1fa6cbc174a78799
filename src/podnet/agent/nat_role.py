"""The node agent's NAT-outgoing role (IPPools -> `inet podnet-nat`), implementing
agent/role.Role.

It keeps the plan it last committed in memory and answers a partial sync with the
difference only; a failed transaction (`committed(False)`) makes the next sync full.
"""
from __future__ import annotations

from podnet.api.objects import ObjectKey
from podnet.calc.model import ClusterState
from podnet.calc.nat import NatPlan, nat_plan
from podnet.dataplane.nft import nat as nat_nft


class NatRole:
    name = "nat"
    kinds = ("IPPool",)

    def __init__(self) -> None:
        self._plan: NatPlan | None = None
        self._pending: NatPlan | None = None

    def nft_fragment(self, state: ClusterState, changed: set[ObjectKey] | None) -> str:
        if changed is not None and self._plan is not None and not any(k.kind in self.kinds for k in changed):
            self._pending = self._plan  # no IPPool changed: nothing to plan (every pod event came here)
            return ""
        plan = nat_plan(state)
        self._pending = plan
        if changed is None or self._plan is None:
            return nat_nft.full_script(plan)
        return nat_nft.diff_script(self._plan, plan)

    def committed(self, ok: bool) -> None:
        self._plan = self._pending if ok else None
        self._pending = None

    def apply_kernel(self, state: ClusterState) -> None:
        return None
