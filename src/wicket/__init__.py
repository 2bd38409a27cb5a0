"""Wicket: identity-aware access proxy for MongoDB and Amazon DocumentDB."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wicket")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
