"""The SDP parser (RFC 8866): bytes from the wire to a `SessionDescription`.

Parse errors are `SdpParseError` (a `RemoteProtocolError`) with "line N" in the reason and the
byte offset, never a bare `ValueError`: bad SDP from the system under test is a finding. The
parser is strict about what RFC 8866 makes mandatory and lenient about line ends (LF-only or
mixed input is common) and the order of optional session-level lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from ._errors import SdpParseError
from ._fields import Connection, Origin, Timing
from ._grammar import MAX_DECIMAL_DIGITS, PROTO, TOKEN, Attribute, Line, raw_lines
from ._model import MediaDescription, SessionDescription

__all__ = ["parse_sdp"]

_DIGITS = re.compile(r"[0-9]+")
_BANDWIDTH = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+:[0-9]+")
_SPACED = re.compile(r"[^ ]+")
_MEDIA_EXTRA = frozenset("icbk")  # 'c': media c= lines after the first


def _words(value: str) -> list[tuple[int, str]]:
    """(column, word) of the space-separated words; runs of spaces are tolerated."""
    return [(m.start(), m.group()) for m in _SPACED.finditer(value)]


@dataclass(frozen=True)
class _Line:
    number: int
    offset: int
    kind: str
    value: str

    def error(self, reason: str, column: int = 0) -> SdpParseError:
        """An error about this line; `column` is a character offset in the value."""
        prefix = f"{self.kind}={self.value[:column]}".encode()
        return SdpParseError(f"line {self.number}: {reason}", offset=self.offset + len(prefix))


_KNOWN_TYPES = frozenset("vosiuepcbtrzkam")


def _lines(data: bytes) -> Iterator[_Line]:
    for number, (offset, raw) in enumerate(raw_lines(data), start=1):
        for bad, what in ((b"\r", "a CR not followed by LF"), (b"\0", "a NUL byte")):
            if bad in raw:
                raise SdpParseError(f"line {number}: {what}", offset=offset + raw.index(bad))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpParseError(f"line {number}: not UTF-8", offset=offset + exc.start) from None
        if not raw:
            raise SdpParseError(f"line {number}: empty line", offset=offset)
        if len(text) < 2 or text[1] != "=" or text[0] not in _KNOWN_TYPES:
            if len(text) >= 2 and text[1] == "=" and "a" <= text[0] <= "z":
                reason = f"unknown line type '{text[0]}=' (RFC 8866 §5: reject the description)"
            else:
                reason = "not a '<type>=<value>' line"
            raise SdpParseError(f"line {number}: {reason}", offset=offset)
        if len(text) == 2:
            raise SdpParseError(f"line {number}: empty value for '{text[0]}='", offset=offset + 2)
        yield _Line(number, offset, text[0], text[2:])


def _parse_origin(line: _Line) -> Origin:
    words = [word for _, word in _words(line.value)]
    if len(words) != 6:
        raise line.error(
            "o= needs '<username> <sess-id> <sess-version> <nettype> <addrtype> <address>'"
        )
    username, sid, version, nettype, addrtype, address = words
    for number, name in ((sid, "sess-id"), (version, "sess-version")):
        if not _DIGITS.fullmatch(number) or len(number) > MAX_DECIMAL_DIGITS:
            raise line.error(f"o= {name} {number!r} is not a decimal number")
    for token, name in ((nettype, "nettype"), (addrtype, "addrtype")):
        if not TOKEN.fullmatch(token):
            raise line.error(f"o= {name} {token!r} is not a token")
    return Origin(username, int(sid), int(version), nettype, addrtype, address)


def _parse_connection(line: _Line) -> Connection:
    words = [word for _, word in _words(line.value)]
    if len(words) != 3 or not all(TOKEN.fullmatch(w) for w in words[:2]):
        raise line.error("c= needs '<nettype> <addrtype> <connection-address>'")
    return Connection(*words)


def _parse_timing(line: _Line) -> Timing:
    words = [word for _, word in _words(line.value)]
    if (
        len(words) != 2
        or not all(_DIGITS.fullmatch(w) for w in words)
        or max(map(len, words)) > MAX_DECIMAL_DIGITS
    ):
        raise line.error("t= needs '<start-time> <stop-time>' in decimal")
    return Timing(int(words[0]), int(words[1]))


def _check_bandwidth(line: _Line) -> None:
    if not _BANDWIDTH.fullmatch(line.value):
        raise line.error("b= needs '<bwtype>:<bandwidth>'")


def _parse_attribute(line: _Line) -> Attribute:
    name, colon, value = line.value.partition(":")
    if not TOKEN.fullmatch(name):
        raise line.error(f"attribute name {name!r} is not a token")
    return (name, value if colon else None)


def _parse_media_line(line: _Line) -> tuple[str, int, int | None, str, tuple[str, ...]]:
    words = _words(line.value)
    if len(words) < 4:
        raise line.error("m= needs '<media> <port>[/<count>] <proto> <fmt> ...'")
    (_, media), (port_at, ports), (proto_at, proto), *formats = words
    if not TOKEN.fullmatch(media):
        raise line.error(f"media {media!r} is not a token")
    port_text, slash, count_text = ports.partition("/")
    if not _DIGITS.fullmatch(port_text) or len(port_text) > 5 or int(port_text) > 65535:
        raise line.error(f"port {port_text!r} is not 0..65535", port_at)
    if slash and (not _DIGITS.fullmatch(count_text) or len(count_text) > 5 or not int(count_text)):
        raise line.error(f"number of ports {count_text!r} is not a positive integer", port_at)
    if not PROTO.fullmatch(proto):
        raise line.error(f"proto {proto!r} is not a token", proto_at)
    for fmt_at, fmt in formats:
        if not TOKEN.fullmatch(fmt):
            raise line.error(f"format {fmt!r} is not a token", fmt_at)
    count = int(count_text) if slash else None
    return media, int(port_text), count, proto, tuple(fmt for _, fmt in formats)


class _MediaBuilder:
    """Collects the lines of one m= section while parsing."""

    def __init__(self, line: _Line) -> None:
        self.line = line
        self.header = _parse_media_line(line)
        self.connection: Connection | None = None
        self.attributes: list[Attribute] = []
        self.positions: list[tuple[int, int]] = []
        self.extra: list[Line] = []

    def add(self, line: _Line) -> None:
        kind = line.kind
        if kind == "a":
            self.attributes.append(_parse_attribute(line))
            self.positions.append((line.number, line.offset))
        elif kind == "c" and self.connection is None:
            self.connection = _parse_connection(line)
        elif kind in _MEDIA_EXTRA:
            if kind == "c":
                _parse_connection(line)
            elif kind == "b":
                _check_bandwidth(line)
            self.extra.append((kind, line.value))
        else:
            raise line.error(f"'{kind}=' is not allowed in a media description")

    def build(self) -> MediaDescription:
        media, port, count, proto, formats = self.header
        result = MediaDescription(
            media,
            port,
            proto,
            formats,
            self.connection,
            tuple(self.attributes),
            count,
            tuple(self.extra),
        )
        object.__setattr__(result, "_positions", tuple(self.positions))
        return result


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse an SDP body (RFC 8866).

    Accepts CRLF, LF or mixed line ends and a missing line end at the very end. Strict about
    what RFC 8866 makes mandatory: `v=0`, `o=`, `s=` first and in that order, at least one `t=`,
    a `c=` for every media (session or media level), known type letters only, no empty lines.
    Lenient about the order of the other session-level lines (kept as received in `raw`).
    """
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise SdpParseError("not encodable as UTF-8", offset=exc.start) from None
    if not data:
        raise SdpParseError("empty session description", offset=0)
    lines = _lines(data)
    header: list[_Line] = []
    for expected in "vos":
        line = next(lines, None)
        if line is None:
            raise SdpParseError(f"missing '{expected}=' line", offset=len(data))
        if line.kind != expected:
            raise line.error(f"expected '{expected}=' here (RFC 8866 §5 order: v=, o=, s=)")
        header.append(line)
    if header[0].value != "0":
        raise header[0].error(f"unsupported SDP version {header[0].value!r}")
    origin = _parse_origin(header[1])

    connection: Connection | None = None
    times: list[Timing] = []
    attributes: list[Attribute] = []
    extra: list[Line] = []
    media: list[_MediaBuilder] = []
    previous = header[2]
    for line in lines:
        kind = line.kind
        if kind == "m":
            if not times:
                raise line.error("no 't=' line before the first media description")
            media.append(_MediaBuilder(line))
        elif media:
            media[-1].add(line)
        elif kind in "vos":
            raise line.error(f"second '{kind}=' line")
        elif kind == "c":
            if connection is not None:
                raise line.error("second session-level 'c=' line")
            connection = _parse_connection(line)
        elif kind == "t":
            times.append(_parse_timing(line))
        elif kind == "r":
            if previous.kind not in "tr":
                raise line.error("'r=' must follow a 't=' or 'r=' line")
            times[-1] = replace(times[-1], repeats=(*times[-1].repeats, line.value))
        elif kind == "a":
            attributes.append(_parse_attribute(line))
        else:  # i= u= e= p= b= z= k=
            if kind == "b":
                _check_bandwidth(line)
            extra.append((kind, line.value))
        previous = line
    if not times:
        raise SdpParseError("no 't=' line", offset=len(data))
    if connection is None:
        for builder in media:
            if builder.connection is None:
                raise builder.line.error("media without 'c=' and no session-level 'c='")

    result = SessionDescription(
        0,
        origin,
        header[2].value,
        connection,
        tuple(times),
        tuple(attributes),
        tuple(builder.build() for builder in media),
        tuple(extra),
    )
    object.__setattr__(result, "raw", data)
    return result
