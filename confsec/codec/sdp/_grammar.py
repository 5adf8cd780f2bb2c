"""The pieces of RFC 8866 grammar that the model, the parser and the a=crypto codec share.

Lines are split here, once, for both the parser and `SessionDescription.to_bytes()`: the bytes
a parsed description gives back must be cut exactly as the parser cut them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["MAX_DECIMAL_DIGITS", "PROTO", "TOKEN", "Attribute", "Line", "raw_lines"]

Attribute = tuple[str, str | None]
"""(name, value); value None for a property attribute such as `a=rtcp-mux`."""
Line = tuple[str, str]
"""(type letter, value) of a line kept verbatim, e.g. ('b', 'AS:64')."""

TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
PROTO = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+(?:/[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+)*")
MAX_DECIMAL_DIGITS = 40
"""Longest decimal number accepted from the wire: bounds the integers hostile input can ask for."""


def raw_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(offset, line without its line end) for each line; LF and CRLF both end a line."""
    position = 0
    while position < len(data):
        end = data.find(b"\n", position)
        stop = len(data) if end < 0 else end
        line = data[position:stop]
        yield position, line[:-1] if line.endswith(b"\r") else line
        position = stop + 1
