"""SIP requests and responses as frozen values, their serialisation, and `make_response`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import KW_ONLY, dataclass, field
from typing import TypeAlias

from confsec.errors import LocalProtocolError

from ._address import NameAddr, Via, parse_name_addr, parse_via
from ._errors import SipParseError
from ._grammar import is_token
from ._headers import Headers, header_key

__all__ = ["REASON_PHRASES", "Message", "Request", "Response", "make_response", "reason_phrase"]

#: Default reason phrases (RFC 3261 §21 and the IANA response-code registry).
REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    430: "Flow Failed",
    433: "Anonymity Disallowed",
    436: "Bad Identity Info",
    437: "Unsupported Credential",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}
_CLASS_PHRASES = {
    1: "Provisional",
    2: "Success",
    3: "Redirection",
    4: "Client Error",
    5: "Server Error",
    6: "Global Failure",
}


def reason_phrase(status: int) -> str:
    """The usual reason phrase for `status`, or a phrase naming its class."""
    return REASON_PHRASES.get(status) or _CLASS_PHRASES.get(status // 100, "Unknown")


def _is_version(text: str) -> bool:
    """`SIP/1*DIGIT.1*DIGIT` (literal case-insensitive, as ABNF literals are)."""
    if text[:4].upper() != "SIP/":
        return False
    major, dot, minor = text[4:].partition(".")
    return bool(dot) and all(p.isascii() and p.isdigit() for p in (major, minor))


def _check_uri(uri: str) -> bool:
    """Request-URI is an absoluteURI: a scheme, a colon, and no whitespace or controls."""
    scheme, colon, rest = uri.partition(":")
    return (
        bool(colon and rest and scheme and scheme.isascii() and scheme[0].isalpha())
        and all(c.isalnum() or c in "+-." for c in scheme)
        and all(c > " " and c != "\x7f" for c in uri)
    )


def _check_common(headers: Headers, body: object, version: str) -> None:
    if not isinstance(body, bytes):
        raise LocalProtocolError(f"body must be bytes, not {type(body).__name__}")
    if not _is_version(version):
        raise LocalProtocolError(f"bad SIP version {version!r}")
    for name, value in headers:
        if not is_token(name):
            raise LocalProtocolError(f"bad header name {name!r}")
        if "\r" in value or "\n" in value or "\x00" in value:
            raise LocalProtocolError(f"CR, LF or NUL in value of header {name!r}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise LocalProtocolError(f"header {name!r} is not encodable as UTF-8") from None


def _serialise(start_line: str, headers: Headers, body: bytes, unchecked: bool) -> bytes:
    if not unchecked:
        headers = _with_content_length(headers, len(body))
    lines = [start_line]
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines.append("")
    lines.append("")
    # surrogateescape lets an unchecked message carry any byte (crafted non-UTF-8 for tests).
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body


def _with_content_length(headers: Headers, length: int) -> Headers:
    """Set Content-Length in place (keeping the name as written, `l` included) or append it."""
    text = str(length)
    fields = [(i, n, v) for i, (n, v) in enumerate(headers) if header_key(n) == "content-length"]
    if len(fields) == 1 and fields[0][2] == text:
        return headers
    if not fields:
        return headers.add("Content-Length", text)
    first = fields[0][0]
    drop = {i for i, _, _ in fields[1:]}
    items = [
        (n, text) if i == first else (n, v) for i, (n, v) in enumerate(headers) if i not in drop
    ]
    return Headers._trusted(tuple(items))


class _MessageBase:
    """Accessors shared by Request and Response.

    They parse on demand and raise `SipParseError` when the header is missing or malformed:
    the parser accepts messages that lack mandatory headers so that a check can report *which*
    rule was broken, and the accessor is where that is found out.
    """

    __slots__ = ()
    headers: Headers

    def header(self, name: str) -> str | None:
        """Shortcut for `self.headers.get(name)`."""
        return self.headers.get(name)

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"missing {name} header")
        return value

    @property
    def call_id(self) -> str:
        """The Call-ID value."""
        return self._required("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        """`(sequence number, method)` from CSeq (RFC 3261 §8.1.1.5: a 32-bit unsigned number)."""
        value = self._required("CSeq")
        parts = value.split()
        if len(parts) != 2:
            raise SipParseError(f"bad CSeq {value!r}")
        number, method = parts
        if not (number.isascii() and number.isdigit() and len(number) <= 10) or not is_token(
            method
        ):
            raise SipParseError(f"bad CSeq {value!r}")
        seq = int(number)
        if seq >= 2**32:
            raise SipParseError(f"CSeq number out of range {value!r}")
        return seq, method

    @property
    def from_(self) -> NameAddr:
        """The From address."""
        return parse_name_addr(self._required("From"))

    @property
    def to(self) -> NameAddr:
        """The To address."""
        return parse_name_addr(self._required("To"))

    @property
    def via(self) -> list[Via]:
        """Every via-parm, top (most recent hop) first; [] when there is none."""
        return [parse_via(v) for v in self.headers.get_all("Via")]

    @property
    def branch(self) -> str | None:
        """The branch of the top Via (the transaction id), or None."""
        top = self.headers.get("Via")
        return parse_via(top).branch if top else None

    @property
    def content_type(self) -> str | None:
        """The media type of the body, lower-cased, without parameters (`application/sdp`).

        The full header, parameters included, is `header("Content-Type")`.
        """
        value = self.headers.get("Content-Type")
        if value is None:
            return None
        return value.partition(";")[0].strip(" \t").lower()


@dataclass(frozen=True, slots=True)
class Request(_MessageBase):
    """A SIP request.

    Checked when built (method token, absoluteURI, version, header names and values) unless
    `unchecked=True`, which also stops `to_bytes()` from fixing Content-Length, so that a step
    can send exactly the malformed bytes it wants. `raw` holds the bytes a parsed message came
    from; it is None on a built message, including one made with `dataclasses.replace()` from a
    parsed one (which is then checked like any other built message).
    """

    method: str
    uri: str
    headers: Headers
    # Bodies carry SDES keys (a=crypto inline:): never in a repr, which ends up in reports.
    body: bytes = field(default=b"", repr=False)
    version: str = "SIP/2.0"
    _: KW_ONLY
    unchecked: bool = field(default=False, compare=False)
    raw: bytes | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Headers):
            object.__setattr__(self, "headers", Headers(self.headers))
        if isinstance(self.body, (bytearray, memoryview)):
            object.__setattr__(self, "body", bytes(self.body))
        if self.unchecked:
            return
        if not is_token(self.method):
            raise LocalProtocolError(f"bad method {self.method!r}")
        if not _check_uri(self.uri):
            raise LocalProtocolError(f"bad Request-URI {self.uri!r}")
        _check_common(self.headers, self.body, self.version)

    def to_bytes(self) -> bytes:
        """The wire form: request line, headers, blank line, body (CRLF line ends)."""
        return _serialise(
            f"{self.method} {self.uri} {self.version}", self.headers, self.body, self.unchecked
        )


@dataclass(frozen=True, slots=True)
class Response(_MessageBase):
    """A SIP response; same building rules as `Request` (status must be 100..699)."""

    status: int
    reason: str
    headers: Headers
    # Bodies carry SDES keys (a=crypto inline:): never in a repr, which ends up in reports.
    body: bytes = field(default=b"", repr=False)
    version: str = "SIP/2.0"
    _: KW_ONLY
    unchecked: bool = field(default=False, compare=False)
    raw: bytes | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Headers):
            object.__setattr__(self, "headers", Headers(self.headers))
        if isinstance(self.body, (bytearray, memoryview)):
            object.__setattr__(self, "body", bytes(self.body))
        if self.unchecked:
            return
        if type(self.status) is not int or not 100 <= self.status <= 699:
            raise LocalProtocolError(f"bad status code {self.status!r}")
        if any(c in self.reason for c in "\r\n\x00"):
            raise LocalProtocolError(f"CR, LF or NUL in reason phrase {self.reason!r}")
        _check_common(self.headers, self.body, self.version)

    def to_bytes(self) -> bytes:
        """The wire form: status line, headers, blank line, body (CRLF line ends)."""
        return _serialise(
            f"{self.version} {self.status} {self.reason}", self.headers, self.body, self.unchecked
        )


Message: TypeAlias = Request | Response


def from_wire(cls: type[Request] | type[Response], raw: bytes, *values: object) -> Message:
    """Make a message from parsed fields without the builder's checks (the parser made them).

    Bypasses `__init__` so that `raw` (not an init argument, so that `dataclasses.replace()`
    cannot carry stale bytes over to an edited message) can be set.
    """
    msg = object.__new__(cls)
    names = ("method", "uri") if cls is Request else ("status", "reason")
    for name, value in zip((*names, "headers", "body", "version"), values, strict=True):
        object.__setattr__(msg, name, value)
    object.__setattr__(msg, "unchecked", False)
    object.__setattr__(msg, "raw", raw)
    return msg


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """Build the response to `request` as RFC 3261 §8.2.6.2 says.

    Copies every Via (in order, field lines as received), From, To, Call-ID and CSeq; adds
    `;tag=to_tag` to To unless the request's To already has a tag (a mid-dialog request);
    copies Timestamp into a 100 (§8.2.6.1). `headers` are appended after those. Record-Route is
    not copied: only dialog-creating responses carry it (§12.1.1), so the caller adds it.
    """
    copied: list[tuple[str, str]] = []
    for name, value in request.headers:
        key = header_key(name)
        if key == "via" or key in ("call-id", "cseq", "from"):
            copied.append((name, value))
        elif key == "to":
            if to_tag is not None and parse_name_addr(value).tag is None:
                value = f"{value};tag={to_tag}"
            copied.append((name, value))
        elif key == "timestamp" and status == 100:
            copied.append((name, value))
    copied.extend(headers)
    return Response(
        status, reason if reason is not None else reason_phrase(status), Headers(copied), body
    )
