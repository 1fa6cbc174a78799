"""`podnet-ipam`: the IPAM plugin binary. Only the skeleton is imported up front."""
from __future__ import annotations

import sys


def main() -> int:
    from podnet.cni import ipam_plugin, skel
    return skel.main(ipam_plugin.HANDLERS)


if __name__ == "__main__":
    sys.exit(main())
