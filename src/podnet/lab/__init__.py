"""podnet.lab"""
