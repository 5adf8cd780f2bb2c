"""What the signalling robustness probes send, as typed values: the grammar the Examples cells of
the features are written in, and the bytes each value crafts.

A cell such as "an INVITE with a 100 KB header value" is parsed into a value with its
parameters (`OversizedHeaderValue(kib=100)`), and the bytes are built from those parameters,
never from the wording. The feature then reads as a specification: another header name, size
or count within the grammar needs no code, and a cell outside it fails with the list of forms
the suite can craft instead of a lookup miss. Each form is written once, as the class's `FORM`:
it is the pattern the cell is matched against and, filled in, the value's `str()`, so messages
about a probe say it in the words of the feature.

Each request breaks RFC 3261 in one way only, on an INVITE the suite's own codec takes
otherwise; each offer is an SDES offer (RFC 4568) for one audio stream with one flaw or one
unusual choice of suites. They are assembled by hand, line by line, because the codec's
builders refuse to make them (which is their job). Pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, fields
from functools import cache
from typing import ClassVar, TypeVar, get_type_hints

from confsec.codec.sdp import SRTP_SUITES, CryptoAttribute

__all__ = [
    "OFFER_FORMS",
    "REQUEST_FORMS",
    "SUPPORTED_SUITE",
    "UNKNOWN_FIRST_TAG",
    "ContentLengthBeyondBody",
    "CraftedOffer",
    "CutShortInCrypto",
    "KeyNotBase64",
    "KeyWrongLength",
    "MalformedRequest",
    "ManyHeaderFields",
    "MissingHeader",
    "NegativeContentLength",
    "NotSip",
    "NulInHeaderName",
    "OnlyUnknownSuite",
    "OversizedHeaderValue",
    "PortlessMLine",
    "RequestContext",
    "UnknownSuiteFirst",
    "parse_offer",
    "parse_request",
]

SUPPORTED_SUITE = "AES_CM_128_HMAC_SHA1_80"
"""The SDES suite of RFC 4568 §6.2.1 that SRTP deployments commonly support: the flawed offers
carry it, so that the flaw and nothing else is what the service has to refuse."""
UNKNOWN_FIRST_TAG = 2
"""The tag of the supported a=crypto in an unknown-first offer: the answer must carry it."""


# ------------------------------------------------------------------------------- the grammar

_SLOT = re.compile(r"<(\w+)>")
_SLOT_PATTERNS = {int: r"[0-9]+", str: r"\S+"}
"""A slot of type int takes digits, one of type str a single word (a header name, a suite)."""


class Crafted:
    """A value that the Gherkin names by one form. `FORM` is the cell's text, with `<field>`
    for each of the dataclass's fields; `str()` fills the form in with the value's fields."""

    FORM: ClassVar[str]

    def __str__(self) -> str:
        return _SLOT.sub(lambda m: str(getattr(self, m.group(1))), self.FORM)


C = TypeVar("C", bound=Crafted)


@cache
def _pattern(cls: type[Crafted]) -> tuple[re.Pattern[str], dict[str, type]]:
    """The regular expression of `cls.FORM` and the type of each of its slots."""
    hints = get_type_hints(cls)
    types = {f.name: hints[f.name] for f in fields(cls)}  # type: ignore[arg-type]
    parts, end = [], 0
    for m in _SLOT.finditer(cls.FORM):
        name = m.group(1)
        if name not in types:
            raise TypeError(f"{cls.__name__}.FORM names <{name}>, which is not one of its fields")
        parts += [
            re.escape(cls.FORM[end : m.start()]),
            f"(?P<{name}>{_SLOT_PATTERNS[types[name]]})",
        ]
        end = m.end()
    parts.append(re.escape(cls.FORM[end:]))
    return re.compile("".join(parts)), types


def _parse(cell: str, forms: tuple[type[C], ...], what: str) -> C:
    """The value of the first form `cell` fits; ValueError naming every accepted form if it
    fits none, or saying why its parameters cannot be crafted if they cannot."""
    for cls in forms:
        pattern, types = _pattern(cls)
        m = pattern.fullmatch(cell.strip())
        if m is None:
            continue
        try:
            return cls(**{k: types[k](v) for k, v in m.groupdict().items()})
        except ValueError as exc:
            raise ValueError(f"{what} {cell!r}: {exc}") from None
    accepted = "\n".join(f"  - {cls.FORM}" for cls in forms)
    raise ValueError(
        f"{cell!r} is not a {what} the suite can craft; the accepted forms are:\n{accepted}"
    )


def _positive(value: int, what: str) -> None:
    if value < 1:
        raise ValueError(f"{what} must be at least 1, not {value}")


# ----------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class RequestContext:
    """What a crafted request needs to look like it came from carol's TLS connection."""

    request_uri: str
    from_uri: str
    via_host: str = "127.0.0.1"
    via_port: int = 9


def _lines(*lines: str) -> bytes:
    return "".join(f"{line}\r\n" for line in lines).encode("utf-8")


_INVITE_HEADERS = ("Via", "Max-Forwards", "From", "To", "Call-ID", "CSeq", "Contact")
"""The headers of the base INVITE, each one RFC 3261 requires of it (§8.1.1, Contact §8.1.1.8)."""


def _invite(ctx: RequestContext, *, drop: str = "", extra: Iterable[str] = ()) -> list[str]:
    """The start line and headers of a plain, well-formed INVITE (without Content-Length),
    minus the header named in `drop`, plus the `extra` header lines."""
    branch = "z9hG4bK" + secrets.token_hex(8)
    headers = [
        f"Via: SIP/2.0/TLS {ctx.via_host}:{ctx.via_port};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <{ctx.from_uri}>;tag={secrets.token_hex(4)}",
        f"To: <{ctx.request_uri}>",
        f"Call-ID: {secrets.token_hex(10)}@confsec.robustness",
        "CSeq: 1 INVITE",
        f"Contact: <{ctx.from_uri}>",
    ]
    kept = [h for h in headers if not drop or not h.startswith(f"{drop}:")]
    return [f"INVITE {ctx.request_uri} SIP/2.0", *kept, *extra]


_BODY = b"v=0\r\n"  # a body exists, but no offer: nothing here is meant to be admitted


class MalformedRequest(Crafted, ABC):
    """A request the service must not accept (RFC 3261), sent on a TLS connection of its own."""

    incomplete: ClassVar[bool] = False
    """True for a request the service rightly waits on for the rest (RFC 3261 §18.3): over a
    stream it sends nothing, so the probe watches only briefly for an answer to what it never
    got instead of spending the whole transaction timeout on silence."""

    @abstractmethod
    def craft(self, ctx: RequestContext) -> bytes:
        """The bytes of the request, from its start line to the end of its body."""


@dataclass(frozen=True)
class NotSip(MalformedRequest):
    FORM: ClassVar[str] = "a request line that is not SIP"

    def craft(self, ctx: RequestContext) -> bytes:
        return _lines("GET / HTTP/1.1", "Host: conference", "Content-Length: 0", "")


@dataclass(frozen=True)
class MissingHeader(MalformedRequest):
    """An INVITE without one of the headers RFC 3261 requires of it."""

    FORM: ClassVar[str] = "an INVITE without <header>"
    header: str

    def __post_init__(self) -> None:
        # Header names are case-insensitive (RFC 3261 §7.3.1); the base INVITE's spelling is
        # what is dropped. A header it does not carry would leave a well-formed request.
        known = {h.lower(): h for h in _INVITE_HEADERS}
        if self.header.lower() not in known:
            raise ValueError(
                f"the INVITE has no {self.header} header to leave out; it has "
                f"{', '.join(_INVITE_HEADERS)}"
            )
        object.__setattr__(self, "header", known[self.header.lower()])

    def craft(self, ctx: RequestContext) -> bytes:
        return _lines(*_invite(ctx, drop=self.header), "Content-Length: 0", "")


@dataclass(frozen=True)
class NegativeContentLength(MalformedRequest):
    FORM: ClassVar[str] = "an INVITE with a negative Content-Length"

    def craft(self, ctx: RequestContext) -> bytes:
        head = _lines(*_invite(ctx), "Content-Type: application/sdp", "Content-Length: -5", "")
        return head + _BODY


@dataclass(frozen=True)
class ContentLengthBeyondBody(MalformedRequest):
    FORM: ClassVar[str] = "an INVITE with a Content-Length larger than its body"
    incomplete: ClassVar[bool] = True

    def craft(self, ctx: RequestContext) -> bytes:
        head = _lines(*_invite(ctx), "Content-Type: application/sdp", "Content-Length: 4096", "")
        return head + _BODY


@dataclass(frozen=True)
class NulInHeaderName(MalformedRequest):
    FORM: ClassVar[str] = "an INVITE with NUL bytes in a header line"

    def craft(self, ctx: RequestContext) -> bytes:
        # NUL inside the header name: no token, so no SIP parser can take the line for a header.
        extra = ["Sub\x00\x00ject: robustness probe"]
        return _lines(*_invite(ctx, extra=extra), "Content-Length: 0", "")


@dataclass(frozen=True)
class OversizedHeaderValue(MalformedRequest):
    """One header value of `kib` KiB. At 100, far beyond what any real header needs: SIP
    stacks cap a header line at a few KB and a header section at some tens of KB."""

    FORM: ClassVar[str] = "an INVITE with a <kib> KB header value"
    kib: int

    def __post_init__(self) -> None:
        _positive(self.kib, "the header value's size in KB")

    def craft(self, ctx: RequestContext) -> bytes:
        extra = [f"Subject: {'x' * (self.kib * 1024)}"]
        return _lines(*_invite(ctx, extra=extra), "Content-Length: 0", "")


@dataclass(frozen=True)
class ManyHeaderFields(MalformedRequest):
    """`count` extension header fields on top of the INVITE's own."""

    FORM: ClassVar[str] = "an INVITE with <count> header fields"
    count: int

    def __post_init__(self) -> None:
        _positive(self.count, "the number of header fields")

    def craft(self, ctx: RequestContext) -> bytes:
        extra = [f"X-Robustness-{n}: {n}" for n in range(self.count)]
        return _lines(*_invite(ctx, extra=extra), "Content-Length: 0", "")


REQUEST_FORMS: tuple[type[MalformedRequest], ...] = (
    NotSip,
    MissingHeader,
    NegativeContentLength,
    ContentLengthBeyondBody,
    NulInHeaderName,
    OversizedHeaderValue,
    ManyHeaderFields,
)


def parse_request(cell: str) -> MalformedRequest:
    """The malformed request an Examples cell names (one of `REQUEST_FORMS`)."""
    return _parse(cell, REQUEST_FORMS, "malformed request")


# -------------------------------------------------------------------------------- offers


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _sdp(host: str, port: int | None, cryptos: Iterable[str]) -> bytes:
    """An SDES offer for one audio stream; `port` None leaves the port out of the m= line."""
    lines = [
        "v=0",
        f"o=carol {secrets.randbelow(2**31)} 1 IN IP4 {host}",
        "s=-",
        f"c=IN IP4 {host}",
        "t=0 0",
        "m=audio RTP/SAVP 0" if port is None else f"m=audio {port} RTP/SAVP 0",
        *(f"a=crypto:{value}" for value in cryptos),
        "a=sendrecv",
    ]
    return "".join(f"{line}\r\n" for line in lines).encode("ascii")


def _good_crypto(tag: int = 1, suite: str = SUPPORTED_SUITE) -> str:
    return CryptoAttribute.generate(tag, suite).to_value()


def _unknown_crypto(tag: int, suite: str) -> str:
    # No profile gives the key length of an unknown suite: 30 bytes, as the common suites have.
    return f"{tag} {suite} inline:{_b64(secrets.token_bytes(30))}"


def _unknown(suite: str) -> None:
    if suite in SRTP_SUITES:
        raise ValueError(f"{suite} is a crypto suite the suite knows, not an unknown one")


class CraftedOffer(Crafted, ABC):
    """An SDP offer with one flaw or one unusual choice of suites, sent in an authenticated
    INVITE to the conference URI; (host, port) name the offerer's (unused) media address."""

    @abstractmethod
    def craft(self, host: str = "127.0.0.1", port: int = 9) -> bytes:
        """The SDP body of the offer."""


@dataclass(frozen=True)
class KeyNotBase64(CraftedOffer):
    FORM: ClassVar[str] = "an a=crypto key that is not base64"

    def craft(self, host: str = "127.0.0.1", port: int = 9) -> bytes:
        key = "not*base64~at!all%%%%%%%%%%%%%%%%%%%%"
        return _sdp(host, port, [f"1 {SUPPORTED_SUITE} inline:{key}"])


@dataclass(frozen=True)
class KeyWrongLength(CraftedOffer):
    FORM: ClassVar[str] = "an a=crypto key of the wrong length for its suite"

    def craft(self, host: str = "127.0.0.1", port: int = 9) -> bytes:
        # 20 bytes where AES_CM_128_HMAC_SHA1_80 needs a 16-byte key and a 14-byte salt.
        key = _b64(secrets.token_bytes(20))
        return _sdp(host, port, [f"1 {SUPPORTED_SUITE} inline:{key}"])


@dataclass(frozen=True)
class PortlessMLine(CraftedOffer):
    FORM: ClassVar[str] = "an m= line without a port"

    def craft(self, host: str = "127.0.0.1", port: int = 9) -> bytes:
        return _sdp(host, None, [_good_crypto()])


@dataclass(frozen=True)
class CutShortInCrypto(CraftedOffer):
    FORM: ClassVar[str] = "a body cut short inside the a=crypto line"

    def craft(self, host: str = "127.0.0.1", port: int = 9) -> bytes:
        full = _sdp(host, port, [_good_crypto()])
        cut = full.index(b"inline:") + len(b"inline:") + 20  # half of the 40-character key
        return full[:cut]


@dataclass(frozen=True)
class OnlyUnknownSuite(CraftedOffer):
    """An offer whose one a=crypto names a suite no SRTP profile defines: with nothing it can
    use, the answerer must refuse it (RFC 4568 §7.1.2)."""

    FORM: ClassVar[str] = "only the unknown crypto suite <suite>"
    suite: str

    def __post_init__(self) -> None:
        _unknown(self.suite)

    def craft(self, host: str = "127.0.0.1", port: int = 9) -> bytes:
        return _sdp(host, port, [_unknown_crypto(1, self.suite)])


@dataclass(frozen=True)
class UnknownSuiteFirst(CraftedOffer):
    """An unknown suite with tag 1, then a supported one with `UNKNOWN_FIRST_TAG`: the
    answerer must skip the first for the second (RFC 4568 §7.1.2)."""

    FORM: ClassVar[str] = "<unknown> first and <supported> second"
    unknown: str
    supported: str

    def __post_init__(self) -> None:
        _unknown(self.unknown)
        info = SRTP_SUITES.get(self.supported)
        if info is None or info.null_cipher:
            usable = ", ".join(s for s, i in SRTP_SUITES.items() if not i.null_cipher)
            raise ValueError(
                f"{self.supported} is not a suite a secure conference can select; one of "
                f"{usable} is"
            )

    def craft(self, host: str = "127.0.0.1", port: int = 9) -> bytes:
        cryptos = [
            _unknown_crypto(1, self.unknown),
            _good_crypto(UNKNOWN_FIRST_TAG, self.supported),
        ]
        return _sdp(host, port, cryptos)


OFFER_FORMS: tuple[type[CraftedOffer], ...] = (
    KeyNotBase64,
    KeyWrongLength,
    PortlessMLine,
    CutShortInCrypto,
    OnlyUnknownSuite,
    UnknownSuiteFirst,
)


def parse_offer(cell: str) -> CraftedOffer:
    """The offer an Examples cell (or a step's text) names (one of `OFFER_FORMS`)."""
    return _parse(cell, OFFER_FORMS, "crafted offer")
