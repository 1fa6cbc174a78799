"""podnet.datastore"""
