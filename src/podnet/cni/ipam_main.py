"""`podnet-ipam`: the IPAM plugin binary. Tries the node's daemon first (client.py);
otherwise runs the call in-process."""
from __future__ import annotations

import sys


def main() -> int:
    from podnet.cni.client import try_daemon
    rc = try_daemon("ipam")
    if rc is not None:
        return rc
    from podnet.cni import ipam_plugin, skel
    return skel.main(ipam_plugin.HANDLERS)


if __name__ == "__main__":
    sys.exit(main())
