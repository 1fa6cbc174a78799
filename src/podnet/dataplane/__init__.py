"""podnet.dataplane"""
