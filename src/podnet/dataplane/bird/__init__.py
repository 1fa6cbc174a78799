"""BIRD, podnet's BGP speaker: its configuration (conf.py, pure), its process and birdc (daemon.py)."""
