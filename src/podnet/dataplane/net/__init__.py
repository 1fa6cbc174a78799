"""Kernel links, routes, sysctls and network namespaces."""
