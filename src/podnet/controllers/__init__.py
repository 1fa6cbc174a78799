"""podnet.controllers: the cluster-wide controllers (one per cluster, not per node) and the
supervisor that runs them."""
