"""`podnet-cni`: the network plugin binary. Tries the node's daemon first (client.py);
otherwise runs the call in-process. Nothing heavy is imported before that choice."""
from __future__ import annotations

import sys


def main() -> int:
    from podnet.cni.client import try_daemon
    rc = try_daemon("cni")
    if rc is not None:
        return rc
    from podnet.cni import plugin, skel
    return skel.main(plugin.HANDLERS)


if __name__ == "__main__":
    sys.exit(main())
