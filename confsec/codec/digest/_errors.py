"""The one error the digest codec raises on bad input."""

from __future__ import annotations

from confsec.errors import RemoteProtocolError

__all__ = ["DigestError"]


class DigestError(RemoteProtocolError):
    """A challenge or credentials value that is malformed or cannot be answered."""
