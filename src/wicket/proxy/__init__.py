"""Proxy service: the public port, its routes, and the web side."""
