"""The one error the SIP codec raises on bad input."""

from __future__ import annotations

from confsec.errors import RemoteProtocolError

__all__ = ["SipParseError"]


class SipParseError(RemoteProtocolError):
    """Bytes or text from the wire that are not valid SIP.

    `offset` is the byte offset in the input given to the parser (for `SipStream`, in the whole
    stream since it was created; for `parse_uri` and friends, the character offset in the text),
    so that a report can point at the defect. `status_hint` is what a server would answer: 400
    for a malformed message, 513 when a size limit is exceeded, 413 for an oversized body.
    """
