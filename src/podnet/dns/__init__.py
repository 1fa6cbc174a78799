"""podnet.dns"""
