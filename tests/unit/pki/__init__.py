"""Tests of wicket.pki."""
