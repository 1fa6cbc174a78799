"""nftables: renderers (pure text) and the runner that applies them."""
