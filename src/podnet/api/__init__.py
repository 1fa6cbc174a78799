"""podnet.api"""
