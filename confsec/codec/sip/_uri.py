"""SIP, SIPS and (minimal) tel URIs: RFC 3261 §19.1 and RFC 3966."""

from __future__ import annotations

import string
from dataclasses import dataclass, field

from ._errors import SipParseError
from ._grammar import format_params, parse_params

__all__ = ["SipUri", "format_host", "parse_host_port", "parse_uri"]

_HOST_CHARS = frozenset(string.ascii_letters + string.digits + "-._")
_IPV6_CHARS = frozenset(string.hexdigits + ":.")
_TEL_CHARS = frozenset(string.digits + string.ascii_letters + "+-.()*#%")
_NO_WS = frozenset(' \t\r\n<>"')


@dataclass(frozen=True)
class SipUri:
    """A parsed `sip:`/`sips:`/`tel:` URI.

    `host` is kept without the brackets of an IPv6 reference (`::1`), which is what socket code
    wants; `str()` puts them back. Escapes (`%40`) are kept as written so that `str()` gives back
    the text received. Parameter names are lower-cased (they are case-insensitive); a flag
    parameter such as `lr` maps to None. For `tel:` the number is in `user` and `host` is "".
    """

    scheme: str
    user: str | None
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    password: str | None = None

    def __hash__(self) -> int:
        return hash(
            (
                self.scheme,
                self.user,
                self.host,
                self.port,
                frozenset(self.params.items()),
                frozenset(self.headers.items()),
                self.password,
            )
        )

    @property
    def transport(self) -> str | None:
        """The `transport` URI parameter, lower-cased, or None."""
        value = self.params.get("transport")
        return value.lower() if value else None

    def __str__(self) -> str:
        if self.scheme == "tel":
            return f"tel:{self.user or ''}{format_params(self.params)}"
        userinfo = ""
        if self.user is not None:
            userinfo = self.user
            if self.password is not None:
                userinfo += ":" + self.password
            userinfo += "@"
        text = f"{self.scheme}:{userinfo}{format_host(self.host, self.port)}"
        text += format_params(self.params)
        if self.headers:
            text += "?" + "&".join(f"{k}={v}" for k, v in self.headers.items())
        return text


def format_host(host: str, port: int | None) -> str:
    """`host[:port]`, bracketing an IPv6 address."""
    text = f"[{host}]" if ":" in host else host
    return text if port is None else f"{text}:{port}"


def _parse_port(text: str, offset: int) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or int(text) > 65535:
        raise SipParseError(f"bad port {text!r}", offset=offset)
    return int(text)


def parse_host_port(text: str, base: int = 0) -> tuple[str, int | None]:
    """Parse `host[:port]` (hostname, IPv4 or `[IPv6]`); used by URIs and Via sent-by."""
    if text.startswith("["):
        close = text.find("]")
        if close == -1:
            raise SipParseError("unterminated IPv6 reference", offset=base)
        host = text[1:close]
        if not host or ":" not in host or not _IPV6_CHARS.issuperset(host):
            raise SipParseError(f"bad IPv6 reference {text[: close + 1]!r}", offset=base)
        rest = text[close + 1 :].strip(" \t")
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise SipParseError("unexpected text after IPv6 reference", offset=base + close + 1)
        return host, _parse_port(rest[1:].strip(" \t"), base + close + 1)
    host, colon, port = text.partition(":")
    host = host.strip(" \t")
    if not host or not _HOST_CHARS.issuperset(host):
        raise SipParseError(f"bad host {host!r}", offset=base)
    if not colon:
        return host, None
    return host, _parse_port(port.strip(" \t"), base + len(host) + 1)


def parse_uri(text: str) -> SipUri:
    """Parse a SIP, SIPS or tel URI.

    Raises `SipParseError` (offset = character offset in `text`; status_hint 416 for another
    scheme, the code a UAS answers with).
    """
    if _NO_WS.intersection(text):
        bad = next(i for i, ch in enumerate(text) if ch in _NO_WS)
        raise SipParseError("whitespace or delimiter inside URI", offset=bad)
    colon = text.find(":")
    if colon <= 0:
        raise SipParseError("URI has no scheme", offset=0)
    scheme = text[:colon].lower()
    rest = text[colon + 1 :]
    base = colon + 1
    if scheme == "tel":
        return _parse_tel(rest, base)
    if scheme not in ("sip", "sips"):
        raise SipParseError(f"unsupported URI scheme {scheme!r}", offset=0, status_hint=416)

    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    question = rest.find("?")
    if at != -1 and (question == -1 or at < question):
        userinfo = rest[:at]
        user, pw_colon, pw = userinfo.partition(":")
        if not user:
            raise SipParseError("empty user part before '@'", offset=base)
        password = pw if pw_colon else None
        base += at + 1
        rest = rest[at + 1 :]

    uri_headers: dict[str, str] = {}
    rest, question_mark, header_text = rest.partition("?")
    if question_mark:
        hbase = base + len(rest) + 1
        for piece in header_text.split("&"):
            name, eq, value = piece.partition("=")
            if not name or not eq:
                raise SipParseError(f"bad URI header {piece!r}", offset=hbase)
            uri_headers[name] = value
            hbase += len(piece) + 1

    hostport, *param_pieces = rest.split(";")
    host, port = parse_host_port(hostport, base)
    pieces: list[tuple[int, str]] = []
    pos = base + len(hostport) + 1
    for piece in param_pieces:
        pieces.append((pos, piece))
        pos += len(piece) + 1
    return SipUri(scheme, user, host, port, parse_params(pieces), uri_headers, password)


def _parse_tel(rest: str, base: int) -> SipUri:
    number, *param_pieces = rest.split(";")
    if not number or not _TEL_CHARS.issuperset(number):
        raise SipParseError(f"bad telephone number {number!r}", offset=base)
    pieces: list[tuple[int, str]] = []
    pos = base + len(number) + 1
    for piece in param_pieces:
        pieces.append((pos, piece))
        pos += len(piece) + 1
    return SipUri("tel", number, "", None, parse_params(pieces))
