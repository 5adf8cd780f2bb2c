"""The one error the SDP codec raises on bad input, SDP or a=crypto alike."""

from __future__ import annotations

from confsec.errors import RemoteProtocolError

__all__ = ["SdpParseError"]


class SdpParseError(RemoteProtocolError):
    """The SDP (or an a=crypto value in it) is malformed.

    `reason` starts with "line N:" when the problem is tied to a line; `offset` is the byte offset
    in the parsed input (for `CryptoAttribute.parse`, the character offset in the value).
    """
