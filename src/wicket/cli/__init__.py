"""Wicket command-line programs: wicket (daemon), wctl (admin), wsh (user)."""
