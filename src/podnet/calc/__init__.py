"""podnet.calc"""
