"""Small RFC 3261 §25 grammar helpers shared by the header, URI and address parsers.

They work on `str` (header values are decoded once, as UTF-8, by the message parser) and never
use regular expressions, so that hostile input cannot trigger backtracking. Every failure is a
`SipParseError` whose offset is a character offset in the text handed to the helper plus `base`.
"""

from __future__ import annotations

import string

from ._errors import SipParseError

__all__ = [
    "TOKEN_BYTES",
    "format_params",
    "is_token",
    "parse_params",
    "quote",
    "read_quoted",
    "split_outside",
]

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN_CHARS = string.ascii_letters + string.digits + "-.!%*_+`'~"
TOKEN_BYTES = _TOKEN_CHARS.encode("ascii")
_TOKEN_DELETE = dict.fromkeys(map(ord, _TOKEN_CHARS))
_WS = " \t"


def is_token(text: str) -> bool:
    """True if `text` is a non-empty RFC 3261 token (method names, header names, params)."""
    return bool(text) and not text.translate(_TOKEN_DELETE)


def quote(text: str) -> str:
    """Serialise `text` as a quoted-string, escaping only the two characters that need it."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_quoted(text: str, start: int, base: int = 0) -> tuple[str, int]:
    """Read the quoted-string that opens at `text[start]` (a `"`).

    Returns the unescaped content and the index just after the closing quote. A quoted-pair
    (`\\x`) stands for `x`, as RFC 3261 §25.1 says.
    """
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\":
            if i + 1 >= n:
                break
            out.append(text[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    raise SipParseError("unterminated quoted-string", offset=base + start)


def split_outside(text: str, sep: str, base: int = 0) -> list[tuple[int, str]]:
    """Split `text` on `sep` where it is not inside a quoted-string or `<...>`.

    Returns `(offset, piece)` pairs, pieces unstripped, so that callers can report where a bad
    piece begins. This is what makes `Contact: "Doe, J" <sip:j@x>, <sip:k@y>` two values.
    """
    if '"' not in text and "<" not in text:
        out: list[tuple[int, str]] = []
        pos = 0
        for piece in text.split(sep):
            out.append((base + pos, piece))
            pos += len(piece) + 1
        return out
    pieces: list[tuple[int, str]] = []
    start = 0
    i = 0
    n = len(text)
    depth = 0
    while i < n:
        ch = text[i]
        if ch == '"' and depth == 0:
            _, i = read_quoted(text, i, base)
            continue
        if ch == "<":
            depth += 1
        elif ch == ">" and depth:
            depth -= 1
        elif ch == sep and depth == 0:
            pieces.append((base + start, text[start:i]))
            start = i + 1
        i += 1
    if depth:
        raise SipParseError("unbalanced '<' in header value", offset=base + start)
    pieces.append((base + start, text[start:]))
    return pieces


def parse_params(pieces: list[tuple[int, str]]) -> dict[str, str | None]:
    """Turn `;name=value` pieces into a dict (names lower-cased, values kept as written).

    A flag parameter (`;lr`, `;rport`) maps to None. Quoted values keep their quotes so that
    `str()` gives back what was received; whitespace around `=` is allowed (EQUAL = SWS "=" SWS).
    """
    params: dict[str, str | None] = {}
    for offset, piece in pieces:
        name, eq, value = piece.partition("=")
        name = name.strip(_WS)
        if not is_token(name):
            raise SipParseError(f"bad parameter name {name!r}", offset=offset)
        if not eq:
            params[name.lower()] = None
            continue
        value = value.strip(_WS)
        if value.startswith('"'):
            _, end = read_quoted(value, 0, offset)
            if end != len(value):
                raise SipParseError("text after quoted parameter value", offset=offset)
        elif not value or " " in value or "\t" in value or '"' in value:
            raise SipParseError(f"bad value for parameter {name!r}", offset=offset)
        params[name.lower()] = value
    return params


def format_params(params: dict[str, str | None]) -> str:
    """Serialise parameters as `;name=value` / `;flag`, in insertion order."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())
