"""name-addr / addr-spec (From, To, Contact, Route...) and Via values: RFC 3261 §20 and §25."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._errors import SipParseError
from ._grammar import format_params, is_token, parse_params, quote, read_quoted, split_outside
from ._uri import format_host, parse_host_port

__all__ = ["NameAddr", "Via", "parse_name_addr", "parse_via"]

_WS = " \t"


def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _WS:
        i += 1
    return i


@dataclass(frozen=True)
class NameAddr:
    """`"Display" <uri>;param=value` as in From, To, Contact, Route, Refer-To.

    `display` is unescaped (None when absent, "" for `"" <sip:x>`); `uri` is the text between
    the angle brackets (or the bare addr-spec), not parsed further because it may be any
    absoluteURI; `params` are the header parameters after the address (names lower-cased,
    values kept as written, flags map to None).
    """

    display: str | None
    uri: str
    params: dict[str, str | None] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.display, self.uri, frozenset(self.params.items())))

    @property
    def tag(self) -> str | None:
        """The `tag` parameter (dialog identification, RFC 3261 §19.3), or None."""
        return self.params.get("tag")

    def __str__(self) -> str:
        head = f"<{self.uri}>" if self.display is None else f"{quote(self.display)} <{self.uri}>"
        return head + format_params(self.params)


def parse_name_addr(text: str) -> NameAddr:
    """Parse one name-addr or addr-spec value (no list: split with `Headers.get_all` first).

    For a bare addr-spec, everything after the first `;` is a header parameter, not a URI
    parameter (RFC 3261 §20.10), which is why `sip:x;tag=1` has the tag in `params`.
    """
    n = len(text)
    i = _skip_ws(text, 0)
    if i == n:
        raise SipParseError("empty address", offset=i)
    display: str | None = None
    if text[i] == '"':
        display, i = read_quoted(text, i)
        i = _skip_ws(text, i)
        if i == n or text[i] != "<":
            raise SipParseError("expected '<' after display name", offset=i)
        angle = True
    else:
        lt = text.find("<", i)
        angle = lt != -1
        if angle:
            words = text[i:lt].strip(_WS)
            if words:
                if any(not is_token(w) for w in words.split()):
                    raise SipParseError(f"bad display name {words!r}", offset=i)
                display = " ".join(words.split())
            i = lt
    if angle:
        gt = text.find(">", i)
        if gt == -1:
            raise SipParseError("missing '>' after URI", offset=i)
        uri = text[i + 1 : gt].strip(_WS)
        uri_offset = i + 1
        rest_start = gt + 1
    else:
        semi = text.find(";", i)
        rest_start = n if semi == -1 else semi
        uri = text[i:rest_start].strip(_WS)
        uri_offset = i
        if any(ch in uri for ch in " \t,?"):
            raise SipParseError("bare URI with space, ',' or '?' must be in <>", offset=i)
    colon = uri.find(":")
    if colon <= 0 or not uri[0].isascii() or not uri[0].isalpha() or any(c in uri for c in "<>"):
        raise SipParseError(f"bad URI {uri!r}", offset=uri_offset)
    rest = text[rest_start:]
    stripped = rest.strip(_WS)
    if not stripped:
        return NameAddr(display, uri, {})
    if not stripped.startswith(";"):
        raise SipParseError("unexpected text after address", offset=rest_start)
    first_semi = rest.find(";")
    pieces = split_outside(rest[first_semi + 1 :], ";", rest_start + first_semi + 1)
    return NameAddr(display, uri, parse_params(pieces))


@dataclass(frozen=True)
class Via:
    """One via-parm: `SIP/2.0/TLS host:port;branch=z9hG4bK...;rport;received=...`.

    `transport` is upper-cased (UDP, TCP, TLS, WS, WSS, SCTP); `host` has no IPv6 brackets.
    `protocol` keeps the sent-protocol name and version ("SIP/2.0").
    """

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    def __hash__(self) -> int:
        return hash(
            (self.transport, self.host, self.port, frozenset(self.params.items()), self.protocol)
        )

    @property
    def branch(self) -> str | None:
        """The transaction id (RFC 3261 §17.2.3), or None."""
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        """The source address a server saw (`received`, RFC 3261 §18.2.1), or None."""
        return self.params.get("received")

    @property
    def has_rport(self) -> bool:
        """True when `rport` is present, as a bare flag (a request) or with a value (RFC 3581)."""
        return "rport" in self.params

    @property
    def rport(self) -> int | None:
        """The port filled in by a server in `rport=N`; None when absent, a flag or not a number."""
        value = self.params.get("rport")
        if value and value.isascii() and value.isdigit() and len(value) <= 5:
            return int(value)
        return None

    def __str__(self) -> str:
        return (
            f"{self.protocol}/{self.transport} {format_host(self.host, self.port)}"
            f"{format_params(self.params)}"
        )


def parse_via(text: str) -> Via:
    """Parse one via-parm (split a Via line into via-parms with `Headers.get_all("Via")`)."""
    if len(split_outside(text, ",")) > 1:
        raise SipParseError("several via-parms in one value; use Headers.get_all", offset=0)
    (first_offset, first), *param_pieces = split_outside(text, ";")
    parts = first.split("/", 2)
    if len(parts) != 3:
        raise SipParseError("Via must start with protocol/version/transport", offset=first_offset)
    name, version = parts[0].strip(_WS), parts[1].strip(_WS)
    tail = parts[2].lstrip(_WS)
    j = 0
    while j < len(tail) and tail[j] not in _WS:
        j += 1
    transport, sent_by = tail[:j], tail[j:]
    if not (is_token(name) and is_token(version) and is_token(transport)):
        raise SipParseError(f"bad Via sent-protocol {first.strip()!r}", offset=first_offset)
    sent_by = sent_by.strip(_WS)
    if not sent_by:
        raise SipParseError("Via has no sent-by host", offset=first_offset)
    sent_by_offset = first_offset + first.find(sent_by)
    host, port = parse_host_port(sent_by, sent_by_offset)
    return Via(transport.upper(), host, port, parse_params(param_pieces), f"{name}/{version}")
