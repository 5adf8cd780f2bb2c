"""What the analyser reads from SIP: where a message starts, its SDES keys and its m= lines.

Only text the capture carries in the clear (or that tshark decrypted with the key log, see
`confsec.analyze.tlskeys`) comes here; it is a few messages per call, so plain regular
expressions over the whole message are cheap enough.
"""

from __future__ import annotations

import base64
import re

from confsec.analyze.findings import SrtpKey
from confsec.media.srtp import profile_for

SIP_START = (
    b"INVITE ",
    b"ACK ",
    b"BYE ",
    b"CANCEL ",
    b"OPTIONS ",
    b"REGISTER ",
    b"UPDATE ",
    b"PRACK ",
    b"SUBSCRIBE ",
    b"NOTIFY ",
    b"MESSAGE ",
    b"INFO ",
    b"REFER ",
    b"PUBLISH ",
    b"SIP/2.0 ",
)
"""How a SIP request or response begins: what tells SIP from other payloads on the wire."""
CRYPTO = re.compile(rb"a=crypto:\d+ ([A-Z0-9_]+) inline:([A-Za-z0-9+/=]+)")
"""An SDES attribute (RFC 4568): groups are the suite and the base64 key||salt."""
_MLINE = re.compile(rb"m=(\w+) (\d+)(?:/\d+)? ([\w/]+)")
_CLINE = re.compile(rb"c=IN IP[46] ([0-9a-fA-F.:]+)")


def sdes_key(suite: str, inline: bytes, origin: str) -> SrtpKey | None:
    """The key of an `a=crypto` line, or None if its suite is unknown or the value too short
    for it (a capture holds whatever the target sent; a line that is not a key is no key)."""
    try:
        prof = profile_for(suite)
        raw = base64.b64decode(inline + b"=" * (-len(inline) % 4))
    except Exception:
        return None
    key, salt = raw[: prof.key_len], raw[prof.key_len : prof.key_len + prof.salt_len]
    if len(salt) != prof.salt_len:
        return None
    return SrtpKey(suite, key, salt, origin)


def sdp_media(data: bytes, default_addr: str) -> list[tuple[str, int, str]]:
    """(address, port, protocol) of each m= line in a SIP message's SDP.

    The address is the media-level c= line if there is one, else the session-level one, else
    the sender of the message (RFC 8866 5.7). Only SIP takes this path, so splitting lines here
    costs nothing that matters.
    """
    media: list[tuple[int, str]] = []
    media_addr: list[str | None] = []
    session_addr: str | None = None
    for raw in data.split(b"\n"):
        line = raw.rstrip(b"\r")
        if line.startswith(b"c="):
            c = _CLINE.match(line)
            if c and media:
                media_addr[-1] = c.group(1).decode()
            elif c:
                session_addr = c.group(1).decode()
        elif line.startswith(b"m="):
            m = _MLINE.match(line)
            if m:
                media.append((int(m.group(2)), m.group(3).decode()))
                media_addr.append(None)
    return [
        (addr or session_addr or default_addr, port, proto)
        for addr, (port, proto) in zip(media_addr, media, strict=True)
    ]
