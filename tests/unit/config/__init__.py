"""Tests of the config layer (wicket.config)."""
