"""Apply an nft script as one transaction (`nft -f -`) in a network namespace.

The kernel applies the whole script or none of it, so a failed sync leaves the previous
ruleset in place; callers then fall back to a full sync.
"""
from __future__ import annotations

from podnet.dataplane.net.netns import CommandError, run


class NftError(Exception):
    pass


class NftRunner:
    def __init__(self, netns: str | None):
        self.netns = netns
        self.applied = 0

    def apply(self, script: str) -> None:
        if not script.strip():
            return
        try:
            run(self.netns, ["nft", "-f", "-"], input=script)
        except CommandError as e:
            raise NftError(f"nft -f failed in netns {self.netns}: {e.stderr.strip()}") from e
        self.applied += 1

    def list_table(self, family: str, table: str) -> str:
        return run(self.netns, ["nft", "list", "table", family, table]).stdout
