"""Request-contained recipient lists: the members a creator names in its INVITE (RFC 5366).

RFC 5366 lets the creator of a conference hand the conference factory the list of its
participants in the creation INVITE itself: a `multipart/mixed` body (RFC 2046 5.1) whose parts
are the SDP offer and an RFC 4826 `application/resource-lists+xml` document carrying
`Content-Disposition: recipient-list` (RFC 5363), with `Require: recipient-list-invite`. The
suite builds such a body to create a members-only conference (`@pics:restricted_membership`);
the reference reads it to learn who its members are.

The parser sees bytes from the wire: it takes CRLF line ends only (SIP's, RFC 3261 7), at most
`MAX_PARTS` parts, no DTD and no entities in the XML, and raises `RecipientListError` (400) for
anything else, never a bare exception.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from lxml import etree

from confsec.errors import RemoteProtocolError

__all__ = [
    "OPTION_TAG",
    "RESOURCE_LISTS",
    "InviteBody",
    "RecipientListError",
    "recipient_list_body",
    "split_invite_body",
]

OPTION_TAG = "recipient-list-invite"
"""The option tag of RFC 5366 3: a UAC that puts a URI list in an INVITE requires it."""
RESOURCE_LISTS = "application/resource-lists+xml"
DISPOSITION = "recipient-list"
"""RFC 5363 5: the disposition type of a body part that is a list of recipients."""
MAX_PARTS = 8
_NS = "{urn:ietf:params:xml:ns:resource-lists}"
_PARAM = re.compile(r';\s*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]+)')
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,./:=? -]{0,69}[0-9A-Za-z'()+_,./:=?-]")
"""RFC 2046 5.1.1 bchars, 1 to 70 of them, not ending in a space."""


class RecipientListError(RemoteProtocolError):
    """A multipart body or resource list that breaks RFC 2046 / RFC 4826."""


@dataclass(frozen=True)
class InviteBody:
    """What an INVITE body carries: the session description and, if any, a recipient list."""

    sdp: bytes
    recipients: tuple[str, ...] | None = None
    """The URIs of the recipient list, in document order; None: the body carries no list."""


def recipient_list_body(sdp: bytes, uris: Sequence[str]) -> tuple[bytes, str]:
    """An INVITE body carrying `sdp` and a recipient list of `uris`, and its Content-Type."""
    entries = "".join(f"    <entry uri={quoteattr(u)}/>\r\n" for u in uris)
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\r\n'
        '<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">\r\n'
        f"  <list>\r\n{entries}  </list>\r\n</resource-lists>\r\n"
    ).encode()
    boundary = "confsec-" + secrets.token_hex(8)
    delimiter = f"--{boundary}\r\n".encode()
    body = (
        delimiter
        + b"Content-Type: application/sdp\r\n\r\n"
        + sdp
        + b"\r\n"
        + delimiter
        + f"Content-Type: {RESOURCE_LISTS}\r\nContent-Disposition: {DISPOSITION}\r\n\r\n".encode()
        + xml
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f'multipart/mixed;boundary="{boundary}"'


def split_invite_body(content_type: str | None, body: bytes) -> InviteBody:
    """The offer and the recipient list of an INVITE body.

    A body that is not `multipart/*` is the offer itself, whatever its Content-Type says (the
    SDP parser judges it). In a multipart body the offer is the first `application/sdp` part
    and the list the first resource-lists part whose disposition is `recipient-list`; a body
    without an SDP part yields an empty offer.
    """
    kind, params = _media_type(content_type or "")
    if not kind.startswith("multipart/"):
        return InviteBody(body)
    boundary = params.get("boundary")
    if boundary is None or not _BOUNDARY.fullmatch(boundary):
        raise RecipientListError(f"{kind} without a valid boundary parameter")
    sdp: bytes | None = None
    recipients: tuple[str, ...] | None = None
    for headers, content in _parts(body, boundary.encode()):
        part_kind, _ = _media_type(headers.get("content-type", "text/plain"))
        disposition = headers.get("content-disposition", "").split(";")[0].strip().lower()
        if part_kind == "application/sdp" and sdp is None:
            sdp = content
        elif part_kind == RESOURCE_LISTS and disposition == DISPOSITION and recipients is None:
            recipients = _entries(content)
    return InviteBody(sdp or b"", recipients)


def _media_type(value: str) -> tuple[str, dict[str, str]]:
    kind, _, rest = value.partition(";")
    params = {}
    for name, raw in _PARAM.findall(";" + rest):
        params[name.lower()] = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
    return kind.strip().lower(), params


def _parts(body: bytes, boundary: bytes) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart body (RFC 2046 5.1.1): (headers by lower-case name, content).

    The CRLF before a delimiter belongs to the delimiter, so a part's content ends without it.
    """
    pieces = (b"\r\n" + body).split(b"\r\n--" + boundary)
    if len(pieces) < 2:
        raise RecipientListError("multipart body without its boundary delimiter")
    out = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            return out
        if len(out) == MAX_PARTS:
            raise RecipientListError(f"multipart body of more than {MAX_PARTS} parts")
        padding, crlf, part = piece.partition(b"\r\n")
        if not crlf or padding.strip(b" \t"):
            raise RecipientListError("a boundary delimiter is not followed by CRLF")
        if part.startswith(b"\r\n"):
            head, content = b"", part[2:]
        else:
            head, sep, content = part.partition(b"\r\n\r\n")
            if not sep:
                raise RecipientListError("a body part's headers do not end with an empty line")
        out.append((_part_headers(head), content))
    raise RecipientListError("multipart body without its closing delimiter")


def _part_headers(head: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in head.split(b"\r\n") if head else []:
        name, colon, value = line.partition(b":")
        if not colon or not name.strip() or name != name.strip():
            raise RecipientListError(f"malformed body part header line {line[:40]!r}")
        try:
            headers.setdefault(name.decode("ascii").lower(), value.decode("utf-8").strip())
        except UnicodeDecodeError:
            raise RecipientListError("a body part header is not text") from None
    return headers


def _entries(xml: bytes) -> tuple[str, ...]:
    """The entry URIs of an RFC 4826 resource-lists document, lists nested or not.

    References to lists held elsewhere (`entry-ref`, `external`) cannot be resolved here and
    are refused: silently leaving them out would drop members the creator named.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        raise RecipientListError(f"the recipient list is not well-formed XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise RecipientListError("the recipient list must not carry a DOCTYPE")
    if root.tag != _NS + "resource-lists":
        raise RecipientListError(f"the recipient list's root is {root.tag}, not resource-lists")
    if root.find(f".//{_NS}entry-ref") is not None or root.find(f".//{_NS}external") is not None:
        raise RecipientListError("entry-ref and external lists are not resolved here")
    uris = []
    for entry in root.iter(_NS + "entry"):
        uri = entry.get("uri")
        if not uri:
            raise RecipientListError("a recipient list entry has no uri")
        uris.append(uri)
    return tuple(uris)
