"""Parsing SIP messages from bytes: the shared header-section parser and `parse_message`.

The hot path works on bytes with `find`/`split`, decodes each physical line once (so that an
invalid UTF-8 byte is reported at its exact offset), and never uses a regular expression.
"""

from __future__ import annotations

from typing import NamedTuple

from ._errors import SipParseError
from ._grammar import TOKEN_BYTES, is_token
from ._headers import Headers, header_key
from ._message import Message, Request, Response, _check_uri, _is_version, from_wire

__all__ = [
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "MAX_LINE_LENGTH",
    "build_message",
    "find_head_end",
    "parse_head",
    "parse_message",
]

#: Default limits. A header section larger than this is refused with status_hint 513 (Message
#: Too Large): it protects the suite from a peer that streams headers forever.
MAX_HEADER_BYTES = 64 * 1024
MAX_LINE_LENGTH = 8 * 1024
MAX_HEADERS = 256
_MAX_CL_DIGITS = 10


class Head(NamedTuple):
    """The parsed start line and header section of one message."""

    start: tuple[str, str | int, str, str]  # ("request", method, uri, version) / ("response", ...)
    headers: tuple[tuple[str, str], ...]
    content_length: int | None


def find_head_end(buf: bytes | bytearray, start: int, end: int | None = None) -> tuple[int, int]:
    """Find the empty line that closes the header section, searching `buf[start:end]`.

    Returns `(head_end, body_start)`: the header lines are `buf[start:head_end]` and the body
    begins at `body_start`; `(-1, -1)` when there is no empty line yet. Bare-LF line ends are
    accepted as well as CRLF (be liberal in what you accept), so the empty line is `\\n\\r\\n`
    or `\\n\\n`, whichever comes first.
    """
    stop = len(buf) if end is None else end
    crlf = buf.find(b"\n\r\n", start, stop)
    lf = buf.find(b"\n\n", start, stop)
    if crlf != -1 and (lf == -1 or crlf < lf):
        return crlf, crlf + 3
    if lf != -1:
        return lf, lf + 2
    return -1, -1


def _parse_start_line(text: str, offset: int) -> tuple[str, str | int, str, str]:
    if text[:4].upper() == "SIP/":
        version, _, rest = text.partition(" ")
        code, _, reason = rest.partition(" ")
        if not _is_version(version):
            raise SipParseError(f"bad SIP version {version!r} in status line", offset=offset)
        if len(code) != 3 or not (code.isascii() and code.isdigit()):
            raise SipParseError(f"bad status code {code!r}", offset=offset + len(version) + 1)
        status = int(code)
        if not 100 <= status <= 699:
            raise SipParseError(
                f"status code {status} out of range", offset=offset + len(version) + 1
            )
        return ("response", status, reason, version)
    parts = text.split(" ")
    if len(parts) != 3:
        raise SipParseError(
            "start line is neither 'METHOD SP Request-URI SP SIP-Version' nor a status line",
            offset=offset,
        )
    method, uri, version = parts
    if not is_token(method):
        raise SipParseError(f"bad method {method!r}", offset=offset)
    if not _check_uri(uri):
        raise SipParseError(f"bad Request-URI {uri!r}", offset=offset + len(method) + 1)
    if not _is_version(version):
        raise SipParseError(
            f"bad SIP version {version!r}", offset=offset + len(method) + len(uri) + 2
        )
    return ("request", method, uri, version)


def parse_head(
    data: bytes,
    start: int,
    end: int,
    *,
    max_line_length: int = MAX_LINE_LENGTH,
    max_headers: int = MAX_HEADERS,
) -> Head:
    """Parse the start line and header lines in `data[start:end]` (offsets are into `data`).

    Folded lines (starting with SP/HTAB) are joined to the previous value with one space, as
    RFC 3261 §7.3.1 makes them equivalent. Content-Length, if present, is checked here: digits
    only, and every copy must agree.
    """
    start_line: tuple[str, str | int, str, str] | None = None
    names: list[str] = []
    values: list[list[str]] = []
    offsets: list[int] = []
    pos = start
    for raw_line in data[start:end].split(b"\n"):
        line_off = pos
        pos += len(raw_line) + 1
        line = raw_line[:-1] if raw_line.endswith(b"\r") else raw_line
        if len(line) > max_line_length:
            raise SipParseError(
                f"line longer than {max_line_length} bytes", offset=line_off, status_hint=513
            )
        cr = line.find(b"\r")
        if cr != -1:
            raise SipParseError("bare CR in header section", offset=line_off + cr)
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SipParseError(
                "header section is not valid UTF-8", offset=line_off + exc.start
            ) from None
        if start_line is None:
            start_line = _parse_start_line(text, line_off)
            continue
        if line[:1] in (b" ", b"\t"):
            if not values:
                raise SipParseError("continuation line before the first header", offset=line_off)
            values[-1].append(text.strip(" \t"))
            continue
        colon = line.find(b":")
        if colon == -1:
            raise SipParseError("header line without ':'", offset=line_off)
        name = line[:colon].rstrip(b" \t")
        if not name or name.translate(None, TOKEN_BYTES):
            raise SipParseError(f"bad header name {name!r}", offset=line_off)
        if len(names) >= max_headers:
            raise SipParseError(
                f"more than {max_headers} header fields", offset=line_off, status_hint=513
            )
        names.append(name.decode("ascii"))
        # Everything before the colon is ASCII, so the byte index is also the character index.
        values.append([text[colon + 1 :].strip(" \t")])
        offsets.append(line_off)
    if start_line is None:  # pragma: no cover - callers never pass an empty section
        raise SipParseError("empty message", offset=start)

    headers = tuple(
        (n, v[0] if len(v) == 1 else " ".join(p for p in v if p))
        for n, v in zip(names, values, strict=True)
    )
    content_length: int | None = None
    for (name, value), offset in zip(headers, offsets, strict=True):
        if header_key(name) != "content-length":
            continue
        if not (value.isascii() and value.isdigit()):
            raise SipParseError(f"bad Content-Length {value!r}", offset=offset)
        if len(value) > _MAX_CL_DIGITS:
            raise SipParseError(
                f"Content-Length {value[:20]}... too large", offset=offset, status_hint=413
            )
        length = int(value)
        if content_length is not None and length != content_length:
            raise SipParseError("conflicting Content-Length headers", offset=offset)
        content_length = length
    return Head(start_line, headers, content_length)


def build_message(head: Head, body: bytes, raw: bytes) -> Message:
    """Make the Request or Response value; parsed values skip the builder's checks."""
    kind, a, b, version = head.start
    cls = Request if kind == "request" else Response
    return from_wire(cls, raw, a, b, Headers._trusted(head.headers), body, version)


def parse_message(
    data: bytes,
    *,
    max_header_bytes: int = MAX_HEADER_BYTES,
    max_line_length: int = MAX_LINE_LENGTH,
    max_headers: int = MAX_HEADERS,
) -> Message:
    """Parse one SIP message from a datagram (or an already framed buffer).

    CRLFs before the start line are skipped (RFC 3261 §7.5). Content-Length is optional here;
    when present the body must be at least that long and is cut to it (RFC 3261 §18.3: extra
    bytes in a datagram are discarded). `raw` of the result is `data` as given.
    Raises `SipParseError` (and nothing else) on any input.
    """
    data = bytes(data)
    total = len(data)
    start = total - len(data.lstrip(b"\r\n"))
    if start == total:
        raise SipParseError("no SIP message (empty, or CRLF keep-alive only)", offset=start)
    head_end, body_start = find_head_end(data, start, start + max_header_bytes + 3)
    if head_end == -1 or head_end - start > max_header_bytes:
        if total - start > max_header_bytes:
            raise SipParseError(
                f"header section larger than {max_header_bytes} bytes",
                offset=start + max_header_bytes,
                status_hint=513,
            )
        raise SipParseError("header section not terminated by an empty line", offset=total)
    head = parse_head(
        data, start, head_end, max_line_length=max_line_length, max_headers=max_headers
    )
    body = data[body_start:]
    if head.content_length is not None:
        if head.content_length > len(body):
            raise SipParseError(
                f"body shorter than Content-Length ({len(body)} < {head.content_length})",
                offset=total,
            )
        body = body[: head.content_length]
    return build_message(head, body, data)
