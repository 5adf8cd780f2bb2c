"""What the analyser reads from SIP: where a message starts, its SDES keys, its m= lines and
their DTLS-SRTP certificate fingerprints.

Only text the capture carries in the clear (or that tshark decrypted with the key log, see
`confsec.analyze.tlskeys`) comes here; it is a few messages per call, so plain regular
expressions over the whole message are cheap enough.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

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
_FINGERPRINT = re.compile(rb"a=fingerprint:(\S+) ([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*)\s*$")

Fingerprint = tuple[str, bytes]
"""(hash function as signalled, digest) of one `a=fingerprint` (RFC 8122 §5)."""


@dataclass(frozen=True, slots=True)
class MediaLine:
    """One m= line: where its SDP's author receives media, the protocol, the fingerprints of
    the certificate it will present in DTLS-SRTP (none for SDES)."""

    addr: str
    port: int
    proto: str
    fingerprints: tuple[Fingerprint, ...] = ()


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
    """(address, port, protocol) of each m= line in a SIP message's SDP (see `sdp_media_lines`)."""
    return [(m.addr, m.port, m.proto) for m in sdp_media_lines(data, default_addr)]


def sdp_media_lines(data: bytes, default_addr: str) -> list[MediaLine]:
    """Each m= line of a SIP message's SDP: where its author receives, how, and with which
    certificate fingerprints.

    The address is the media-level c= line if there is one, else the session-level one, else
    the sender of the message (RFC 8866 5.7). The fingerprints are the media-level ones if there
    are any, else the session-level ones (RFC 8122 §5). Only SIP takes this path, so splitting
    lines here costs nothing that matters.
    """
    media: list[tuple[int, str]] = []
    media_addr: list[str | None] = []
    media_fps: list[list[Fingerprint]] = []
    session_addr: str | None = None
    session_fps: list[Fingerprint] = []
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
                media_fps.append([])
        elif line.startswith(b"a=fingerprint:"):
            fp = fingerprint(line)
            if fp is not None:
                (media_fps[-1] if media else session_fps).append(fp)
    return [
        MediaLine(addr or session_addr or default_addr, port, proto, tuple(fps or session_fps))
        for addr, (port, proto), fps in zip(media_addr, media, media_fps, strict=True)
    ]


def fingerprint(line: bytes) -> Fingerprint | None:
    """(hash function, digest) of an `a=fingerprint` line (RFC 8122 §5), or None when it does
    not read as one. Lower-case hex is accepted: holding a certificate against what was
    signalled is the question here, the attribute's grammar is the SDP codec's."""
    m = _FINGERPRINT.match(line)
    if m is None:
        return None
    return m.group(1).decode(), bytes.fromhex(m.group(2).replace(b":", b"").decode())
