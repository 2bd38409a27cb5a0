"""Tests of the auth service's HTTP layer helpers (wicket.authserver)."""
