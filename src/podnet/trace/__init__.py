"""podnet.trace"""
