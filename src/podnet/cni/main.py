"""`podnet-cni`: the network plugin binary. Only the skeleton is imported up front."""
from __future__ import annotations

import sys


def main() -> int:
    from podnet.cni import plugin, skel
    return skel.main(plugin.HANDLERS)


if __name__ == "__main__":
    sys.exit(main())
