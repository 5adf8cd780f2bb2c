"""What the user agent does with requests it cannot handle: say why, and answer 400 if it can.

A request missing a mandatory header, or carrying one that does not parse, never reaches a
transaction: every layer above may then use the header accessors without guarding. A datagram
that does not parse at all still gets a 400 when the headers a response echoes can be picked
out of it, so a peer's transaction ends instead of retransmitting into silence.
"""

from __future__ import annotations

from confsec.codec.sip import Headers, Request, Response, make_response
from confsec.errors import ConfsecError, RemoteProtocolError
from confsec.net.headers import new_tag

_MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")
# Compact forms (RFC 3261 §7.3.3) of the headers a response must echo, for `salvage_400`.
_ECHOED = {
    "via": "Via",
    "v": "Via",
    "from": "From",
    "f": "From",
    "to": "To",
    "t": "To",
    "call-id": "Call-ID",
    "i": "Call-ID",
    "cseq": "CSeq",
}


def check_request(request: Request) -> str | None:
    """Why `request` cannot be handled (missing or malformed mandatory headers), or None."""
    for name in _MANDATORY:
        values = request.headers.get_all(name)
        if not values:
            return f"Missing {name}"
        # Every response echoes these headers (RFC 3261 8.2.6.2): a second copy that does not
        # parse, or a control character the builder refuses, would break the answer later.
        if len(values) > 1 and name != "Via":
            return f"More than one {name}"
        if any(c in v for v in values for c in "\r\n\x00"):
            return f"Control character in {name}"
    try:
        # Parsing them now means the layers above can use the accessors without guarding.
        _parsed = (request.from_, request.to, request.via)
        _seq, method = request.cseq
    except RemoteProtocolError as exc:
        return f"Malformed header: {exc}"
    if method.upper() != request.method.upper():
        return "CSeq method does not match"
    return None


def safe_reason(text: str) -> str:
    """`text` as a reason phrase: printable ASCII, at most 100 characters."""
    cleaned = "".join(c if " " <= c < "\x7f" else " " for c in text)
    return cleaned[:100] or "Bad Request"


def stateless_response(request: Request, status: int, reason: str) -> Response:
    """The answer to a request refused before any transaction, with a To tag of its own."""
    try:
        return make_response(request, status, safe_reason(reason), to_tag=new_tag())
    except RemoteProtocolError:  # the To itself is malformed: echo it untagged
        return make_response(request, status, safe_reason(reason))


def salvage_400(raw: bytes, error: RemoteProtocolError) -> Response | None:
    """A 400 for a datagram that did not parse, built from the header lines that can be
    recognised, or None when it does not look like a request we could answer."""
    text = raw.decode("utf-8", "replace")
    head, _, _ = text.partition("\r\n\r\n")
    lines = head.replace("\r\n", "\n").split("\n")
    if not lines or lines[0].startswith("SIP/") or " SIP/2.0" not in lines[0]:
        return None
    if lines[0].split(" ", 1)[0].upper() == "ACK":
        return None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        key = name.strip().lower()
        if colon and key in _ECHOED:
            value = value.strip()
            if value and all(" " <= c or c == "\t" for c in value):
                headers.append((_ECHOED[key], value))
    if {n for n, _ in headers} != set(_MANDATORY):
        return None
    if not any(n == "To" and ";tag=" in v for n, v in headers):
        headers = [(n, f"{v};tag={new_tag()}" if n == "To" else v) for n, v in headers]
    try:
        return Response(400, safe_reason(f"Bad Request ({error.reason})"), Headers(headers))
    except ConfsecError:
        return None
