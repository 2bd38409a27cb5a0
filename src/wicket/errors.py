"""The one error family every Wicket layer raises.

Library exceptions (ssl, botocore, bson, cryptography) are translated into these at
the boundary, with a message a user can act on.
"""

from __future__ import annotations


class WicketError(Exception):
    """Root of every error Wicket raises on purpose."""


class BadParameter(WicketError):
    """A value given by a user or a peer is not acceptable."""


class NotFound(WicketError):
    """The named thing does not exist."""


class AlreadyExists(WicketError):
    """The named thing exists already."""


class AccessDenied(WicketError):
    """The caller is not allowed to do this."""


class Timeout(WicketError):
    """A network wait ran out of time."""


class UpstreamError(WicketError):
    """The database or cloud service behind Wicket failed."""


class ProtocolError(WicketError):
    """A peer sent bytes that break the protocol."""


class LocalProtocolError(ProtocolError):
    """We were asked to send something that breaks the protocol."""


class RemoteProtocolError(ProtocolError):
    """The remote side sent something that breaks the protocol."""
