"""Wicket's PKI layer: keys, certificate authorities, certificate PEM handling and CA pins."""
