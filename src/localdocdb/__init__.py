"""localdocdb: a DocumentDB-compatible server with real IAM authentication, for local use."""

from wicket import __version__

__all__ = ["__version__"]
