"""Tests of the proxy's pure parts (wicket.proxy)."""
