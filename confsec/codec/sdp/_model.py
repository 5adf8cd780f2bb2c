"""The SDP model: `SessionDescription` and the `MediaDescription`s in it (RFC 8866).

Why it is shaped like this:

- Every line is kept. Unknown attributes, `b=`, `k=`, `i=`, `u=`, `e=`, `p=`, `z=` and `r=` lines
  survive parse -> serialise, in order, because the suite relays and records what a system under
  test sent, and a check may need a line this package has never heard of.
- A description that was built or modified (`with_*`, `dataclasses.replace`) is serialised from
  its fields, in the RFC 8866 §5 line order; a parsed, unmodified one gives back its input.
- Builders validate and raise `LocalProtocolError` (a bug in the suite); the plain constructors do
  not, so that a step can craft a malformed description on purpose.
- Keys never appear in `repr()`: a=crypto keys are replaced by their fingerprint, k= values hidden.
- Attributes with a grammar of their own (a=crypto, a=fingerprint, a=setup, a=tls-id) are parsed
  when read, so a malformed one raises `SdpParseError` there, naming its line, and nowhere else.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Self, TypeVar

from confsec.errors import LocalProtocolError

from ._crypto import CryptoAttribute, redact_crypto
from ._dtls import DTLS_SRTP_PROTOS, DtlsAttributes, check_tls_id, parse_tls_id
from ._errors import SdpParseError
from ._fields import Connection, Origin, Timing
from ._grammar import PROTO, TOKEN, Attribute, Line, raw_lines

__all__ = ["MediaDescription", "SessionDescription"]

_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

# RFC 8866 §5 order; the rank sorts the lines written from fields.
_SESSION_RANK = {"i": 0, "u": 1, "e": 2, "p": 3, "c": 4, "b": 5, "t": 6, "z": 7, "k": 8, "a": 9}
_MEDIA_RANK = {"i": 0, "c": 1, "b": 2, "k": 3, "a": 4}
_T = TypeVar("_T")


def _check_text(what: str, text: str) -> None:
    """Builders refuse line breaks and NUL: they would forge extra SDP lines."""
    if not isinstance(text, str) or any(c in text for c in "\r\n\0"):
        raise LocalProtocolError(f"{what} {text!r} must be text without CR, LF or NUL")


def _check_token(what: str, text: str) -> None:
    if not isinstance(text, str) or not TOKEN.fullmatch(text):
        raise LocalProtocolError(f"{what} {text!r} is not an SDP token")


def _check_attribute(name: str, value: str | None) -> Attribute:
    _check_token("attribute name", name)
    if value is not None:
        _check_text(f"value of a={name}", value)
    return (name, value)


def _attribute_line(attribute: Attribute) -> str:
    name, value = attribute
    return f"a={name}" if value is None else f"a={name}:{value}"


def _direction_of(attributes: Iterable[Attribute]) -> str | None:
    return next((name for name, _ in attributes if name in _DIRECTIONS), None)


def _redacted_attributes(attributes: tuple[Attribute, ...]) -> tuple[Attribute, ...]:
    return tuple(
        (name, redact_crypto(value) if name == "crypto" else value) for name, value in attributes
    )


def _redacted_lines(lines: tuple[Line, ...]) -> tuple[Line, ...]:
    # k= carries an encryption key in clear (RFC 8866 §5.12, obsolete but still a key).
    return tuple(
        (kind, value.partition(":")[0] + ":<hidden>" if kind == "k" else value)
        for kind, value in lines
    )


class _Attributes(DtlsAttributes):
    """Attribute helpers shared by session and media descriptions (both hold `attributes`)."""

    attributes: tuple[Attribute, ...]
    _positions: tuple[tuple[int, int], ...] | None = None  # see MediaDescription._positions
    _session: _Inherited | None = None  # see MediaDescription._session

    def get_attribute(self, name: str) -> str | None:
        """Value of the first `a=name`; None when absent or when it has no value."""
        return next((value for n, value in self.attributes if n == name), None)

    def get_attributes(self, name: str) -> list[str | None]:
        """Values of every `a=name`, in order."""
        return [value for n, value in self.attributes if n == name]

    def has_attribute(self, name: str) -> bool:
        return any(n == name for n, _ in self.attributes)

    def with_attributes(self, attributes: Iterable[Attribute]) -> Self:
        """A copy with these attributes instead of the current ones."""
        checked = tuple(_check_attribute(name, value) for name, value in attributes)
        return replace(self, attributes=checked)  # type: ignore[type-var]

    def with_attribute(self, name: str, value: str | None = None) -> Self:
        """A copy with `a=name[:value]` appended."""
        return self.with_attributes((*self.attributes, (name, value)))

    def without_attribute(self, name: str) -> Self:
        """A copy without any `a=name`."""
        return self._spliced(lambda n: n == name, ())

    def _spliced(self, drop: Callable[[str], bool], new: Iterable[Attribute]) -> Self:
        """Remove the attributes whose name `drop` accepts and put `new` where the first was
        (at the end when there was none), so that a rewritten offer keeps its layout."""
        kept: list[Attribute] = []
        insert_at = None
        for attribute in self.attributes:
            if drop(attribute[0]):
                if insert_at is None:
                    insert_at = len(kept)
            else:
                kept.append(attribute)
        if insert_at is None:
            insert_at = len(kept)
        kept[insert_at:insert_at] = new
        return self.with_attributes(kept)

    def _replaced(self, name: str, values: Iterable[str]) -> Self:
        return self._spliced(lambda n: n == name, [(name, value) for value in values])

    # -- attributes parsed when read -----------------------------------------------------------

    def _parsed(self, name: str, parse: Callable[[str], _T]) -> list[_T]:
        """Every `a=name` parsed, in order; the first malformed one raises `SdpParseError`."""
        result = []
        for index, (n, value) in enumerate(self.attributes):
            if n == name:
                try:
                    result.append(parse(value or ""))
                except SdpParseError as exc:
                    raise self._attribute_error(name, index, exc) from None
        return result

    def _single(self, name: str, parse: Callable[[str], _T]) -> _T | None:
        """The one `a=name` parsed, None when absent; a second one is an error."""
        values = self._parsed(name, parse)
        if len(values) > 1:
            second = [i for i, (n, _) in enumerate(self.attributes) if n == name][1]
            raise self._attribute_error(name, second, SdpParseError(f"more than one a={name}"))
        return values[0] if values else None

    def _attribute_error(self, name: str, index: int, exc: SdpParseError) -> SdpParseError:
        """The error about attribute `index`: its line and byte offset when parsed."""
        if self._positions is None:
            return SdpParseError(f"a={name} ({self._describe(index)}): {exc.reason}")
        line, offset = self._positions[index]
        return SdpParseError(
            f"line {line}: a={name}: {exc.reason}",
            offset=offset + len(f"a={name}:") + (exc.offset or 0),
        )

    def _describe(self, index: int) -> str:
        return f"session-level attribute {index + 1}"

    def _level(self, name: str) -> _Attributes:
        """Where `a=name` is read: here, or at the session level when this media has none."""
        return self if self._session is None or self.has_attribute(name) else self._session


@dataclass(frozen=True)
class _Inherited(_Attributes):
    """Session-level values that a media description falls back on."""

    connection: Connection | None
    direction: str | None
    attributes: tuple[Attribute, ...] = ()
    """All session-level attributes: a=fingerprint and a=setup apply to media without their own."""


def _safe_repr(obj: object, redacted: dict[str, object]) -> str:
    parts = [
        f"{f.name}={redacted.get(f.name, getattr(obj, f.name))!r}" for f in fields(obj) if f.repr
    ]
    return f"{type(obj).__name__}({', '.join(parts)})"


@dataclass(frozen=True, repr=False)
class MediaDescription(_Attributes):
    """One media section: the `m=` line and the `i=`, `c=`, `b=`, `k=`, `a=` lines under it.

    When it sits in a `SessionDescription`, it also knows the session-level `c=` and direction,
    so that `connection_address` and `direction` give the effective values.
    """

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: Connection | None = None
    attributes: tuple[Attribute, ...] = ()
    port_count: int | None = None
    """The `/<number of ports>` of the m= line, None when absent."""
    extra_lines: tuple[Line, ...] = ()
    """`i=`, `b=`, `k=` and further `c=` lines, in order."""
    _session: _Inherited | None = field(default=None, compare=False, repr=False, kw_only=True)
    _positions: tuple[tuple[int, int], ...] | None = field(
        default=None, init=False, compare=False, repr=False
    )
    # (line number, byte offset) of each attribute as parsed, for errors found later (a=crypto).

    def __post_init__(self) -> None:
        object.__setattr__(self, "formats", tuple(self.formats))
        object.__setattr__(self, "attributes", tuple((n, v) for n, v in self.attributes))
        object.__setattr__(self, "extra_lines", tuple((k, v) for k, v in self.extra_lines))

    @classmethod
    def build(
        cls,
        media: str = "audio",
        *,
        port: int,
        proto: str = "RTP/SAVP",
        formats: Iterable[str] = ("0",),
        attributes: Iterable[Attribute] = (),
        connection: Connection | None = None,
    ) -> MediaDescription:
        """A media description for an offer or answer, with checked fields."""
        _check_token("media", media)
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise LocalProtocolError(f"port {port!r} is not 0..65535")
        if not PROTO.fullmatch(proto):
            raise LocalProtocolError(f"proto {proto!r} is not an SDP proto")
        if isinstance(formats, str):
            raise LocalProtocolError(f"formats must be a list of formats, not {formats!r}")
        formats = tuple(formats)
        if not formats:
            raise LocalProtocolError("a media description needs at least one format")
        for fmt in formats:
            _check_token("format", fmt)
        return cls(media, port, proto, formats, connection).with_attributes(attributes)

    # -- effective values ----------------------------------------------------------------------

    @property
    def crypto(self) -> list[CryptoAttribute]:
        """Every `a=crypto` of this media, in order.

        Raises `SdpParseError` for the first malformed one, naming its line and byte offset when
        this description was parsed.
        """
        return self._parsed("crypto", CryptoAttribute.parse)

    @property
    def tls_id(self) -> str | None:
        """The media-level `a=tls-id` (RFC 8842 §4), None when absent; `SdpParseError` for a
        malformed or a second one."""
        return self._single("tls-id", parse_tls_id)

    @property
    def is_dtls_srtp(self) -> bool:
        """The proto is UDP/TLS/RTP/SAVP or UDP/TLS/RTP/SAVPF (RFC 5764 §8), in any case."""
        return self.proto.upper() in DTLS_SRTP_PROTOS

    def _describe(self, index: int) -> str:
        return f"attribute {index + 1} of m={self.media}"

    @property
    def is_secure(self) -> bool:
        """SAVP profile with at least one well-formed, known, encrypting SDES a=crypto.

        Malformed crypto lines do not count (use `crypto` to see why they are malformed); unknown
        suites do not count either, their strength is unknown. DTLS-SRTP is not covered here.
        """
        if "SAVP" not in self.proto:
            return False
        for name, value in self.attributes:
            if name == "crypto":
                try:
                    attribute = CryptoAttribute.parse(value or "")
                except SdpParseError:
                    continue
                if attribute.is_known and not attribute.is_null:
                    return True
        return False

    @property
    def direction(self) -> str:
        """sendrecv, sendonly, recvonly or inactive: media level, else session level, else
        sendrecv (the default, RFC 8866 §6.7)."""
        inherited = self._session.direction if self._session else None
        return _direction_of(self.attributes) or inherited or "sendrecv"

    @property
    def rtcp_mux(self) -> bool:
        """`a=rtcp-mux` is present (RFC 5761)."""
        return self.has_attribute("rtcp-mux")

    def rtcp_address(self, default_host: str) -> tuple[str, int]:
        """Where this side wants RTCP when it does not mux: its `a=rtcp` port and address
        (RFC 3605), else the RTP port + 1 (RFC 3550 11). `default_host` stands in for a
        missing `c=`."""
        host = self.connection_address or default_host
        for name, value in self.attributes:
            if name == "rtcp" and value:
                parts = value.split()
                if parts[0].isdigit() and int(parts[0]) < 65536:
                    return (parts[3] if len(parts) >= 4 else host), int(parts[0])
        return host, self.port + 1

    @property
    def effective_connection(self) -> Connection | None:
        """The media `c=`, else the session `c=` (RFC 8866 §5.7)."""
        return self.connection or (self._session.connection if self._session else None)

    @property
    def connection_address(self) -> str | None:
        """Host of the effective `c=` line (without a multicast suffix), None when there is none."""
        connection = self.effective_connection
        return connection.host if connection else None

    # -- copies ------------------------------------------------------------------------------------

    def with_crypto(self, crypto: Iterable[CryptoAttribute]) -> MediaDescription:
        """A copy whose `a=crypto` lines are these, placed where the first old one was."""
        return self._spliced(lambda n: n == "crypto", [("crypto", c.to_value()) for c in crypto])

    def with_tls_id(self, tls_id: str | None) -> MediaDescription:
        """A copy with `a=tls-id:tls_id` instead of any other (none when `tls_id` is None)."""
        return self._replaced("tls-id", [] if tls_id is None else [check_tls_id(tls_id)])

    def with_direction(self, direction: str) -> MediaDescription:
        """A copy with this direction attribute instead of any other."""
        if direction not in _DIRECTIONS:
            raise LocalProtocolError(f"direction {direction!r} is not one of {_DIRECTIONS}")
        return self._spliced(lambda n: n in _DIRECTIONS, [(direction, None)])

    def with_port(self, port: int) -> MediaDescription:
        """A copy on another port (0 rejects or disables the stream, RFC 3264 §6)."""
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise LocalProtocolError(f"port {port!r} is not 0..65535")
        return replace(self, port=port)

    def with_connection(self, connection: Connection | None) -> MediaDescription:
        return replace(self, connection=connection)

    def _inherit(self, inherited: _Inherited) -> MediaDescription:
        # A shallow copy rather than replace(): it keeps `_positions`, which replace() drops.
        result = copy.copy(self)
        object.__setattr__(result, "_session", inherited)
        return result

    # -- serialise -----------------------------------------------------------------------------

    def to_lines(self) -> list[str]:
        """The lines of this section (without line ends), in RFC 8866 §5 order."""
        ports = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        lines = [f"m={self.media} {ports} {self.proto} {' '.join(self.formats)}"]
        ordered: list[tuple[int, str]] = [(_MEDIA_RANK[k], f"{k}={v}") for k, v in self.extra_lines]
        if self.connection is not None:
            ordered.insert(0, (_MEDIA_RANK["c"], f"c={self.connection}"))
        ordered += [(_MEDIA_RANK["a"], _attribute_line(a)) for a in self.attributes]
        ordered.sort(key=lambda item: item[0])  # stable: same-type lines keep their order
        return lines + [text for _, text in ordered]

    def __repr__(self) -> str:
        return _safe_repr(
            self,
            {
                "attributes": _redacted_attributes(self.attributes),
                "extra_lines": _redacted_lines(self.extra_lines),
            },
        )


@dataclass(frozen=True, repr=False)
class SessionDescription(_Attributes):
    """A whole SDP body.

    `raw` is the input when parsed (None when built); `to_bytes()` returns it (with CRLF line
    ends) until the description is changed, then writes the fields in RFC 8866 order.
    """

    version: int
    origin: Origin
    session_name: str
    connection: Connection | None
    times: tuple[Timing, ...]
    attributes: tuple[Attribute, ...]
    media: tuple[MediaDescription, ...]
    extra_lines: tuple[Line, ...] = ()
    """Session-level `i=`, `u=`, `e=`, `p=`, `b=`, `z=` and `k=` lines, in order."""
    raw: bytes | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "times", tuple(self.times))
        object.__setattr__(self, "attributes", tuple((n, v) for n, v in self.attributes))
        object.__setattr__(self, "extra_lines", tuple((k, v) for k, v in self.extra_lines))
        inherited = _Inherited(self.connection, _direction_of(self.attributes), self.attributes)
        object.__setattr__(
            self,
            "media",
            tuple(m if m._session == inherited else m._inherit(inherited) for m in self.media),
        )

    @classmethod
    def build(
        cls,
        origin_user: str,
        address: str,
        media: Iterable[MediaDescription] = (),
        *,
        session_name: str = "-",
        session_id: int | None = None,
        session_version: int | None = None,
        attributes: Iterable[Attribute] = (),
    ) -> SessionDescription:
        """An offer or answer from `origin_user` at `address` (o= and session-level c=).

        `session_id` defaults to a random 62-bit number (RFC 8866 §5.2 asks for uniqueness);
        `session_version` defaults to the id, as most SIP stacks do.
        """
        for what, text in (("origin user", origin_user), ("address", address)):
            if not text or any(c in text for c in " \t\r\n\0"):
                raise LocalProtocolError(f"{what} {text!r} must be non-empty, without whitespace")
        if not session_name:
            raise LocalProtocolError("s= cannot be empty (RFC 8866 §5.3: use '-')")
        _check_text("session name", session_name)
        addrtype = "IP6" if ":" in address else "IP4"
        sid = secrets.randbits(62) if session_id is None else session_id
        version = sid if session_version is None else session_version
        if sid < 0 or version < 0:
            raise LocalProtocolError("session id and version must not be negative")
        return cls(
            0,
            Origin(origin_user, sid, version, "IN", addrtype, address),
            session_name,
            Connection("IN", addrtype, address),
            (Timing(0, 0),),
            (),
            tuple(media),
        ).with_attributes(attributes)

    def with_media(self, media: Iterable[MediaDescription]) -> SessionDescription:
        return replace(self, media=tuple(media))

    def with_media_at(self, index: int, media: MediaDescription) -> SessionDescription:
        """A copy with media description `index` replaced."""
        new = list(self.media)
        new[index] = media
        return replace(self, media=tuple(new))

    def with_next_version(self) -> SessionDescription:
        """A copy with o= session version + 1, as a changed re-offer needs (RFC 3264 §8)."""
        return replace(self, origin=self.origin.bumped())

    @property
    def direction(self) -> str | None:
        """The session-level direction attribute, None when absent."""
        return _direction_of(self.attributes)

    def to_lines(self) -> list[str]:
        """The lines (without line ends) written from the fields, in RFC 8866 §5 order."""
        lines = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        ordered: list[tuple[int, list[str]]] = [
            (_SESSION_RANK[k], [f"{k}={v}"]) for k, v in self.extra_lines
        ]
        if self.connection is not None:
            ordered.append((_SESSION_RANK["c"], [f"c={self.connection}"]))
        for timing in self.times:
            group = [f"t={timing.start} {timing.stop}"] + [f"r={r}" for r in timing.repeats]
            ordered.append((_SESSION_RANK["t"], group))
        ordered += [(_SESSION_RANK["a"], [_attribute_line(a)]) for a in self.attributes]
        ordered.sort(key=lambda item: item[0])
        for _, group in ordered:
            lines += group
        for media in self.media:
            lines += media.to_lines()
        return lines

    def to_bytes(self) -> bytes:
        """The SDP body with CRLF line ends: the parsed bytes while unchanged, else the fields."""
        if self.raw is not None:
            return b"".join(raw + b"\r\n" for _, raw in raw_lines(self.raw))
        return "".join(line + "\r\n" for line in self.to_lines()).encode("utf-8")

    def __repr__(self) -> str:
        return _safe_repr(
            self,
            {
                "attributes": _redacted_attributes(self.attributes),
                "extra_lines": _redacted_lines(self.extra_lines),
            },
        )
