"""Sans-IO SIP message codec (RFC 3261): parse and build requests, responses and their fields.

`parse_message()` takes one datagram; `SipStream` frames messages on TCP/TLS. Everything raised
on bad input is a `SipParseError`; everything raised on a bad build is a `LocalProtocolError`.
"""

from ._address import NameAddr, Via, parse_name_addr, parse_via
from ._errors import SipParseError
from ._headers import COMPACT_FORMS, LIST_HEADERS, Headers, header_key
from ._message import REASON_PHRASES, Message, Request, Response, make_response, reason_phrase
from ._parser import MAX_HEADER_BYTES, MAX_HEADERS, MAX_LINE_LENGTH, parse_message
from ._stream import MAX_BODY_BYTES, SipStream
from ._uri import SipUri, parse_uri

__all__ = [
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "MAX_BODY_BYTES",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "MAX_LINE_LENGTH",
    "REASON_PHRASES",
    "Headers",
    "Message",
    "NameAddr",
    "Request",
    "Response",
    "SipParseError",
    "SipStream",
    "SipUri",
    "Via",
    "header_key",
    "make_response",
    "parse_message",
    "parse_name_addr",
    "parse_uri",
    "parse_via",
    "reason_phrase",
]
