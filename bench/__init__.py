"""Benchmarks for localdocdb and, later, the Wicket proxy (not part of the test run)."""
