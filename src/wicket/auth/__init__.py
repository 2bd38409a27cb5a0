"""Auth service domain layer: users, roles, join tokens, invites and database resources.

Everything here is async over `wicket.backend.base.Backend` and free of HTTP; the
auth API (aiohttp) is a thin shell on top of these services.
"""
