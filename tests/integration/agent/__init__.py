"""Integration tests of the database agent."""
