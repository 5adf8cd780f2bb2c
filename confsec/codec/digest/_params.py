"""The auth-param lists of challenges and credentials (RFC 7235 §2.1, RFC 7616 §3.3-3.4).

Hand-written rather than a regular expression so that hostile input cannot trigger
backtracking, and so that every failure can name the character offset it was found at.
"""

from __future__ import annotations

from ._errors import DigestError

__all__ = ["WS", "parse_auth_params", "quote", "require"]


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


WS = " \t\r\n"


def parse_auth_params(value: str, what: str) -> dict[str, str]:
    """Parse `Digest name=value, name="quoted", ...` into a dict with lower-case names.

    Tolerant of spacing around `=` and `,`, of empty list elements, and of unquoted values
    where a quoted-string is expected (seen in the wild); strict about duplicates (RFC 7235
    §2.1: each parameter name only once) and about anything that is not a parameter.
    """
    n = len(value)
    i = 0
    while i < n and value[i] in WS:
        i += 1
    start = i
    while i < n and value[i] not in WS:
        i += 1
    scheme = value[start:i]
    if scheme.lower() != "digest":
        raise DigestError(f"{what} is not a Digest one (scheme {scheme[:20]!r})", offset=start)
    if i == n:
        raise DigestError(f"{what} has no parameters", offset=i)
    params: dict[str, str] = {}
    while True:
        while i < n and (value[i] in WS or value[i] == ","):
            i += 1
        if i == n:
            break
        start = i
        while i < n and value[i] not in WS and value[i] not in '=,"':
            i += 1
        name = value[start:i].lower()
        if not name or not name.isascii():
            raise DigestError(f"bad parameter name in {what}", offset=start)
        while i < n and value[i] in WS:
            i += 1
        if i == n or value[i] != "=":
            raise DigestError(f"expected '=' after {name!r} in {what}", offset=i)
        i += 1
        while i < n and value[i] in WS:
            i += 1
        if i < n and value[i] == '"':
            out: list[str] = []
            quote_at = i
            i += 1
            while True:
                if i >= n:
                    raise DigestError(f"unterminated quoted-string in {what}", offset=quote_at)
                ch = value[i]
                if ch == '"':
                    i += 1
                    break
                if ch == "\\" and i + 1 < n:
                    out.append(value[i + 1])
                    i += 2
                    continue
                out.append(ch)
                i += 1
            param = "".join(out)
        else:
            vstart = i
            while i < n and value[i] not in WS and value[i] not in ',"':
                i += 1
            param = value[vstart:i]
            if not param:
                raise DigestError(f"empty value for {name!r} in {what}", offset=vstart)
        if name in params:
            raise DigestError(f"parameter {name!r} repeated in {what}", offset=start)
        params[name] = param
        while i < n and value[i] in WS:
            i += 1
        if i < n and value[i] != ",":
            raise DigestError(f"expected ',' in {what}", offset=i)
    return params


def require(params: dict[str, str], names: tuple[str, ...], what: str) -> None:
    missing = [n for n in names if n not in params]
    if missing:
        raise DigestError(f"{what} lacks {', '.join(missing)}")
