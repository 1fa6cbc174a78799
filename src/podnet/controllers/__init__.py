"""podnet.controllers"""
