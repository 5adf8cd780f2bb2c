"""BFCP (RFC 8855) as scapy layers: the common header and the attributes as TLVs.

Why scapy here when the SIP codec is hand-written: the floor control checks send malformed BFCP
on purpose (`fuzz()` on these layers), and scapy's declarative fields make a wrong length or a
truncated group cost nothing. Following `scapy/contrib/stun.py`:

- every length (the header's Payload Length, each attribute's Length) defaults to None and is
  computed in `post_build` only when unset, so a length a test sets is kept;
- padding is a field too, None = computed; parsed padding is kept, so bytes round-trip exactly;
- attributes dispatch on their type into `ATTRIBUTES`; an unknown type, or a known type whose
  Length does not fit its format, falls back to the generic `BfcpAttribute` (nothing is lost);
- grouped attributes (RFC 8855 5.2.14-5.2.18) nest a `PacketListField` of attributes.

BFCP ports are negotiated in SDP (RFC 8856), so no port is bound: decode with `Bfcp(data)`, or
strictly with `parse_bfcp(data)`, which raises `BfcpParseError` for what RFC 8855 forbids.
`BfcpStream` frames messages on a TLS/TCP byte stream.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Any

from scapy.fields import (
    BitEnumField,
    BitField,
    ByteEnumField,
    ByteField,
    ConditionalField,
    FieldListField,
    IntField,
    PacketListField,
    ShortField,
    StrLenField,
)
from scapy.packet import Packet

from confsec.errors import RemoteProtocolError

__all__ = [
    "ATTRIBUTES",
    "ERROR_CODES",
    "PRIMITIVES",
    "REQUEST_STATUS",
    "AttributeType",
    "Bfcp",
    "BfcpAttribute",
    "BfcpParseError",
    "BfcpStream",
    "ErrorCode",
    "Primitive",
    "RequestStatus",
    "parse_bfcp",
]


class Primitive(IntEnum):
    """The primitive of a message (RFC 8855 5.1, Table 2)."""

    FLOOR_REQUEST = 1
    FLOOR_RELEASE = 2
    FLOOR_REQUEST_QUERY = 3
    FLOOR_REQUEST_STATUS = 4
    USER_QUERY = 5
    USER_STATUS = 6
    FLOOR_QUERY = 7
    FLOOR_STATUS = 8
    CHAIR_ACTION = 9
    CHAIR_ACTION_ACK = 10
    HELLO = 11
    HELLO_ACK = 12
    ERROR = 13
    FLOOR_REQUEST_STATUS_ACK = 14
    FLOOR_STATUS_ACK = 15
    GOODBYE = 16
    GOODBYE_ACK = 17


class AttributeType(IntEnum):
    """The Type of an attribute (RFC 8855 5.2, Table 3)."""

    BENEFICIARY_ID = 1
    FLOOR_ID = 2
    FLOOR_REQUEST_ID = 3
    PRIORITY = 4
    REQUEST_STATUS = 5
    ERROR_CODE = 6
    ERROR_INFO = 7
    PARTICIPANT_PROVIDED_INFO = 8
    STATUS_INFO = 9
    SUPPORTED_ATTRIBUTES = 10
    SUPPORTED_PRIMITIVES = 11
    USER_DISPLAY_NAME = 12
    USER_URI = 13
    BENEFICIARY_INFORMATION = 14
    FLOOR_REQUEST_INFORMATION = 15
    REQUESTED_BY_INFORMATION = 16
    FLOOR_REQUEST_STATUS = 17
    OVERALL_REQUEST_STATUS = 18


class RequestStatus(IntEnum):
    """The Request Status of a REQUEST-STATUS attribute (RFC 8855 5.2.5)."""

    PENDING = 1
    ACCEPTED = 2
    GRANTED = 3
    DENIED = 4
    CANCELLED = 5
    RELEASED = 6
    REVOKED = 7


class ErrorCode(IntEnum):
    """The Error Code of an ERROR-CODE attribute (RFC 8855 5.2.6, Table 5)."""

    CONFERENCE_DOES_NOT_EXIST = 1
    USER_DOES_NOT_EXIST = 2
    UNKNOWN_PRIMITIVE = 3
    UNKNOWN_MANDATORY_ATTRIBUTE = 4
    UNAUTHORIZED_OPERATION = 5
    INVALID_FLOOR_ID = 6
    FLOOR_REQUEST_ID_DOES_NOT_EXIST = 7
    MAX_FLOOR_REQUESTS_REACHED = 8
    USE_TLS = 9
    UNABLE_TO_PARSE_MESSAGE = 10
    USE_DTLS = 11
    UNSUPPORTED_VERSION = 12
    INCORRECT_MESSAGE_LENGTH = 13
    GENERIC_ERROR = 14


# The names as RFC 8855 spells them, derived from the enums so the two cannot drift apart; keyed
# by plain int because scapy's enum fields (and `primitive_name`, which reports show) use them.
PRIMITIVES = {p.value: p.name.title().replace("_", "") for p in Primitive}
ATTRIBUTE_NAMES = {t.value: t.name.replace("_", "-") for t in AttributeType}
REQUEST_STATUS = {s.value: s.name.title() for s in RequestStatus}
ERROR_CODES = {
    code.value: text
    for code, text in {
        ErrorCode.CONFERENCE_DOES_NOT_EXIST: "Conference does not Exist",
        ErrorCode.USER_DOES_NOT_EXIST: "User does not Exist",
        ErrorCode.UNKNOWN_PRIMITIVE: "Unknown Primitive",
        ErrorCode.UNKNOWN_MANDATORY_ATTRIBUTE: "Unknown Mandatory Attribute",
        ErrorCode.UNAUTHORIZED_OPERATION: "Unauthorized Operation",
        ErrorCode.INVALID_FLOOR_ID: "Invalid Floor ID",
        ErrorCode.FLOOR_REQUEST_ID_DOES_NOT_EXIST: "Floor Request ID Does Not Exist",
        ErrorCode.MAX_FLOOR_REQUESTS_REACHED: "Maximum Number of Ongoing Floor Requests Reached",
        ErrorCode.USE_TLS: "Use TLS",
        ErrorCode.UNABLE_TO_PARSE_MESSAGE: "Unable to Parse Message",
        ErrorCode.USE_DTLS: "Use DTLS",
        ErrorCode.UNSUPPORTED_VERSION: "Unsupported Version",
        ErrorCode.INCORRECT_MESSAGE_LENGTH: "Incorrect Message Length",
        ErrorCode.GENERIC_ERROR: "Generic Error",
    }.items()
}

HEADER_LEN = 12
MAX_MESSAGE = 65535 * 4 + 16


class BfcpParseError(RemoteProtocolError):
    """BFCP from the wire that RFC 8855 does not allow; `error_code` is the Error to answer."""

    def __init__(self, reason: str, error_code: int = ErrorCode.UNABLE_TO_PARSE_MESSAGE) -> None:
        super().__init__(reason)
        self.error_code = error_code


# -- attributes --------------------------------------------------------------------------------


def _pad_len(pkt: Packet) -> int:
    return (-(pkt.length or 0)) % 4


class BfcpAttribute(Packet):
    """Any attribute (RFC 8855 5.2): Type (7 bits), M, Length (octets, no padding), contents.

    Also the fallback for unknown types and for known types with a Length their format forbids.
    """

    name = "BFCP attribute"
    fields_desc = [  # noqa: RUF012 (scapy declares fields as a class list)
        BitEnumField("type", 0, 7, ATTRIBUTE_NAMES),
        BitField("M", 0, 1),
        ByteField("length", None),
        StrLenField("value", b"", length_from=lambda p: max(0, (p.length or 0) - 2)),
        StrLenField("padding", None, length_from=_pad_len),
    ]
    fixed_length: int | None = None
    """Length the format requires (None: variable, at least `min_length`)."""
    min_length = 2

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        if _pkt is not None and len(_pkt) >= 2:
            klass = ATTRIBUTES.get(_pkt[0] >> 1, BfcpAttribute)
            length = _pkt[1]
            if klass.fixed_length is not None and length != klass.fixed_length:
                return BfcpAttribute
            if length < klass.min_length:
                return BfcpAttribute
            return klass
        return cls

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        pad = self.padding
        content = len(pkt) - (len(pad) if pad is not None else 0)
        if self.length is None:
            pkt = pkt[:1] + bytes([content & 0xFF]) + pkt[2:]
        if pad is None:
            pkt += b"\x00" * ((-len(pkt)) % 4)
        return pkt + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


def _attr(type_: AttributeType, *fields: Any, fixed: int | None = None, minimum: int = 2) -> dict:
    return {
        "fields_desc": [
            BitEnumField("type", type_, 7, ATTRIBUTE_NAMES),
            BitField("M", 0, 1),
            ByteField("length", None),
            *fields,
            StrLenField("padding", None, length_from=_pad_len),
        ],
        "fixed_length": fixed,
        "min_length": minimum,
    }


def _define(cls_name: str, type_: AttributeType, *fields: Any, **kw: Any) -> type[BfcpAttribute]:
    ns = _attr(type_, *fields, **kw)
    ns["name"] = f"BFCP {ATTRIBUTE_NAMES[type_]}"
    klass = type(cls_name, (BfcpAttribute,), ns)
    ATTRIBUTES[type_] = klass
    return klass


ATTRIBUTES: dict[int, type[BfcpAttribute]] = {}

BfcpBeneficiaryId = _define(
    "BfcpBeneficiaryId", AttributeType.BENEFICIARY_ID, ShortField("beneficiary_id", 0), fixed=4
)
BfcpFloorId = _define("BfcpFloorId", AttributeType.FLOOR_ID, ShortField("floor_id", 0), fixed=4)
BfcpFloorRequestId = _define(
    "BfcpFloorRequestId", AttributeType.FLOOR_REQUEST_ID, ShortField("floor_request_id", 0), fixed=4
)
BfcpPriority = _define(
    "BfcpPriority",
    AttributeType.PRIORITY,
    BitField("priority", 2, 3),
    BitField("reserved", 0, 13),
    fixed=4,
)
BfcpRequestStatus = _define(
    "BfcpRequestStatus",
    AttributeType.REQUEST_STATUS,
    ByteEnumField("request_status", RequestStatus.PENDING, REQUEST_STATUS),
    ByteField("queue_position", 0),
    fixed=4,
)
BfcpErrorCode = _define(
    "BfcpErrorCode",
    AttributeType.ERROR_CODE,
    ByteEnumField("error_code", ErrorCode.GENERIC_ERROR, ERROR_CODES),
    StrLenField("details", b"", length_from=lambda p: max(0, (p.length or 0) - 3)),
    minimum=3,
)


def _text(type_: AttributeType, cls_name: str) -> type[BfcpAttribute]:
    return _define(
        cls_name,
        type_,
        StrLenField("text", b"", length_from=lambda p: max(0, (p.length or 0) - 2)),
    )


BfcpErrorInfo = _text(AttributeType.ERROR_INFO, "BfcpErrorInfo")
BfcpParticipantProvidedInfo = _text(
    AttributeType.PARTICIPANT_PROVIDED_INFO, "BfcpParticipantProvidedInfo"
)
BfcpStatusInfo = _text(AttributeType.STATUS_INFO, "BfcpStatusInfo")
BfcpSupportedAttributes = _define(
    "BfcpSupportedAttributes",
    AttributeType.SUPPORTED_ATTRIBUTES,
    FieldListField(
        "attributes",
        [],
        ByteField("attribute", 0),
        length_from=lambda p: max(0, (p.length or 0) - 2),
    ),
)
"""Each octet: the supported attribute type << 1 (the low bit is reserved)."""
BfcpSupportedPrimitives = _define(
    "BfcpSupportedPrimitives",
    AttributeType.SUPPORTED_PRIMITIVES,
    FieldListField(
        "primitives",
        [],
        ByteEnumField("primitive", 0, PRIMITIVES),
        length_from=lambda p: max(0, (p.length or 0) - 2),
    ),
)
BfcpUserDisplayName = _text(AttributeType.USER_DISPLAY_NAME, "BfcpUserDisplayName")
BfcpUserUri = _text(AttributeType.USER_URI, "BfcpUserUri")


def _grouped(type_: AttributeType, cls_name: str, id_name: str) -> type[BfcpAttribute]:
    return _define(
        cls_name,
        type_,
        ShortField(id_name, 0),
        PacketListField(
            "attributes",
            [],
            BfcpAttribute,
            length_from=lambda p: max(0, (p.length or 0) - 4),
        ),
        minimum=4,
    )


BfcpBeneficiaryInformation = _grouped(
    AttributeType.BENEFICIARY_INFORMATION, "BfcpBeneficiaryInformation", "beneficiary_id"
)
BfcpFloorRequestInformation = _grouped(
    AttributeType.FLOOR_REQUEST_INFORMATION, "BfcpFloorRequestInformation", "floor_request_id"
)
BfcpRequestedByInformation = _grouped(
    AttributeType.REQUESTED_BY_INFORMATION, "BfcpRequestedByInformation", "requested_by_id"
)
BfcpFloorRequestStatus = _grouped(
    AttributeType.FLOOR_REQUEST_STATUS, "BfcpFloorRequestStatus", "floor_id"
)
BfcpOverallRequestStatus = _grouped(
    AttributeType.OVERALL_REQUEST_STATUS, "BfcpOverallRequestStatus", "floor_request_id"
)

GROUPED = (
    AttributeType.BENEFICIARY_INFORMATION,
    AttributeType.FLOOR_REQUEST_INFORMATION,
    AttributeType.REQUESTED_BY_INFORMATION,
    AttributeType.FLOOR_REQUEST_STATUS,
    AttributeType.OVERALL_REQUEST_STATUS,
)


# -- the message ------------------------------------------------------------------------------


class Bfcp(Packet):
    """The COMMON-HEADER (RFC 8855 5.1) and the attributes of one message."""

    name = "BFCP"
    fields_desc = [  # noqa: RUF012 (scapy declares fields as a class list)
        BitField("version", 1, 3),
        BitField("R", 0, 1),
        BitField("F", 0, 1),
        BitField("reserved", 0, 3),
        ByteEnumField("primitive", Primitive.HELLO, PRIMITIVES),
        ShortField("payload_length", None),
        IntField("conference_id", 0),
        ShortField("transaction_id", 0),
        ShortField("user_id", 0),
        ConditionalField(ShortField("fragment_offset", 0), lambda p: p.F == 1),
        ConditionalField(ShortField("fragment_length", 0), lambda p: p.F == 1),
        PacketListField(
            "attributes", [], BfcpAttribute, length_from=lambda p: (p.payload_length or 0) * 4
        ),
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.payload_length is None:
            header = HEADER_LEN + (4 if self.F == 1 else 0)
            length = (len(pkt) - header + 3) // 4
            pkt = pkt[:2] + struct.pack("!H", length & 0xFFFF) + pkt[4:]
        return pkt + pay

    def attrs(self, klass: type[Packet]) -> list[Any]:
        """Top-level attributes of one class, in order."""
        return [a for a in self.attributes if type(a) is klass]

    def attr(self, klass: type[Packet]) -> Any | None:
        found = self.attrs(klass)
        return found[0] if found else None

    @property
    def primitive_name(self) -> str:
        return PRIMITIVES.get(self.primitive, f"primitive {self.primitive}")


def _consumed(a: Packet) -> int:
    """How many bytes the dissector took for `a` (its cached raw bytes)."""
    cache = a.raw_packet_cache
    return len(cache) if cache is not None else len(bytes(a))


def _check_attributes(attrs: list[Packet], where: str) -> None:
    for a in attrs:
        if not isinstance(a, BfcpAttribute):  # bytes scapy could not frame as an attribute
            raise BfcpParseError(
                f"{where}: {len(bytes(a))} bytes that are not an attribute",
                ErrorCode.INCORRECT_MESSAGE_LENGTH,
            )
        if type(a) is BfcpAttribute and a.type in ATTRIBUTES:
            raise BfcpParseError(
                f"{where}: {ATTRIBUTE_NAMES[a.type]} with length {a.length} does not fit its format"
            )
        if type(a) is BfcpAttribute and a.M:
            raise BfcpParseError(
                f"{where}: unknown mandatory attribute type {a.type}",
                ErrorCode.UNKNOWN_MANDATORY_ATTRIBUTE,
            )
        if a.length is None or _consumed(a) != a.length + _pad_len(a):
            raise BfcpParseError(
                f"{where}: attribute type {a.type} is truncated", ErrorCode.INCORRECT_MESSAGE_LENGTH
            )
        if a.type in GROUPED:
            inner = a.attributes
            if sum(_consumed(x) for x in inner) != a.length - 4:
                raise BfcpParseError(
                    f"{where}: grouped attribute {a.type} length mismatch",
                    ErrorCode.INCORRECT_MESSAGE_LENGTH,
                )
            _check_attributes(inner, f"{where}/{ATTRIBUTE_NAMES[a.type]}")


def parse_bfcp(data: bytes) -> Bfcp:
    """Decode one message strictly: what the floor control server will act on."""
    if len(data) < HEADER_LEN:
        raise BfcpParseError(
            f"{len(data)} bytes: shorter than the common header", ErrorCode.INCORRECT_MESSAGE_LENGTH
        )
    version = data[0] >> 5
    if version not in (1, 2):
        raise BfcpParseError(f"unsupported BFCP version {version}", ErrorCode.UNSUPPORTED_VERSION)
    try:
        msg = Bfcp(bytes(data))
    except Exception as exc:  # scapy raises assorted errors on hostile input
        raise BfcpParseError(f"cannot dissect: {type(exc).__name__}: {exc}") from None
    header = HEADER_LEN + (4 if msg.F == 1 else 0)
    if msg.F == 1:
        raise BfcpParseError("fragmented messages are not used over TLS (RFC 8855 6.2)")
    if len(data) != header + msg.payload_length * 4:
        raise BfcpParseError(
            f"Payload Length {msg.payload_length} does not match {len(data) - header} bytes",
            ErrorCode.INCORRECT_MESSAGE_LENGTH,
        )
    if msg.primitive not in PRIMITIVES:
        raise BfcpParseError(f"unknown primitive {msg.primitive}", ErrorCode.UNKNOWN_PRIMITIVE)
    if msg.payload is not None and len(msg.payload) and msg.payload.name != "NoPayload":
        raise BfcpParseError("bytes after the attributes", ErrorCode.INCORRECT_MESSAGE_LENGTH)
    _check_attributes(list(msg.attributes), msg.primitive_name)
    return msg


class BfcpStream:
    """Frames BFCP messages on a reliable byte stream (RFC 8855 6.2: no fragmentation)."""

    def __init__(self, max_message: int = 8192) -> None:
        self._buf = bytearray()
        self.max_message = max_message

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_message(self) -> bytes | None:
        """The next whole message's bytes, None when more data is needed.

        Raises `BfcpParseError` when the header announces more than `max_message` bytes: a
        server must not buffer without bound on a peer's say-so.
        """
        if len(self._buf) < HEADER_LEN:
            return None
        header = HEADER_LEN + (4 if self._buf[0] & 0x08 else 0)
        total = header + struct.unpack("!H", self._buf[2:4])[0] * 4
        if total > self.max_message:
            raise BfcpParseError(
                f"message of {total} bytes exceeds {self.max_message}",
                ErrorCode.INCORRECT_MESSAGE_LENGTH,
            )
        if len(self._buf) < total:
            return None
        out = bytes(self._buf[:total])
        del self._buf[:total]
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)
