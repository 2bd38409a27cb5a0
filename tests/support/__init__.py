"""Shared helpers for tests: real processes on loopback and real client-side protocol code."""
