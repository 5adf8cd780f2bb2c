"""Redaction of what goes into human-readable reports.

SDP carries SDES master keys in clear (`a=crypto ... inline:`), MIKEY payloads carry keys, and a
digest `response=` lets an attacker run an offline dictionary attack on the password. Those are
blanked in every report artefact; the raw forms live only in the evidence bundle. Known secrets
(passwords of the run) are blanked wherever they appear, as a second line of defence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MARK = b"[redacted]"

_PATTERNS: tuple[tuple[re.Pattern[bytes], bytes], ...] = (
    # a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:KEY||SALT|2^31|1:4 -> keep lifetime and MKI
    (re.compile(rb"(inline:)[A-Za-z0-9+/=]+"), rb"\1" + MARK),
    (re.compile(rb"(a=key-mgmt:\s*\S+\s+)\S+"), rb"\1" + MARK),
    (re.compile(rb'((?:^|[\s,])(?:response|cnonce)=)"?[^",\r\n]*"?', re.I), rb'\1"' + MARK + b'"'),
)


def redact(data: bytes, known: Iterable[str] = ()) -> bytes:
    """`data` with key material, digest responses and every `known` secret blanked."""
    for pattern, repl in _PATTERNS:
        data = pattern.sub(repl, data)
    for secret in known:
        if secret:
            data = data.replace(secret.encode(), MARK)
    return data


def redact_text(text: str, known: Iterable[str] = ()) -> str:
    return redact(text.encode("utf-8", "replace"), known).decode("utf-8", "replace")
