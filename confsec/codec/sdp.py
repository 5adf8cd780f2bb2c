"""SDP (RFC 8866) with SDES key exchange, a=crypto (RFC 4568): sans-IO parse and serialise.

Why it is shaped like this:

- Every line is kept. Unknown attributes, `b=`, `k=`, `i=`, `u=`, `e=`, `p=`, `z=` and `r=` lines
  survive parse -> serialise, in order, because the suite relays and records what a system under
  test sent, and a check may need a line this module has never heard of.
- `to_bytes()` of a parsed, unmodified description returns the input byte for byte, with one
  normalisation: line ends are always CRLF (RFC 8866 §5). LF-only (or mixed) input is accepted,
  as many stacks send it, and comes back with CRLF; a missing line end after the last line is
  added. A description that was built or modified (`with_*`, `dataclasses.replace`) is
  serialised from its fields, in the RFC 8866 §5 line order.
- Parse errors are `SdpParseError` (a `RemoteProtocolError`) with "line N" in the reason and the
  byte offset, never a bare `ValueError`: bad SDP from the system under test is a finding.
- `a=crypto` values are parsed lazily by `MediaDescription.crypto`: a malformed crypto attribute
  is an RFC 4568 problem, not an RFC 8866 one, so the rest of the description stays readable;
  `crypto` raises `SdpParseError` naming the line and offset of the bad attribute.
- Keys never appear in `repr()` or `str()`: a short SHA-256 fingerprint stands in for them, so
  logs and reports can say *which* key without disclosing it.
- Builders validate and raise `LocalProtocolError` (a bug in the suite); the plain constructors do
  not, so that a step can craft a malformed description on purpose.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Self

from confsec.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "SRTP_SUITES",
    "Connection",
    "CryptoAttribute",
    "MediaDescription",
    "Origin",
    "SdpParseError",
    "SessionDescription",
    "SuiteInfo",
    "Timing",
    "parse_sdp",
]


class SdpParseError(RemoteProtocolError):
    """The SDP (or an a=crypto value in it) is malformed.

    `reason` starts with "line N:" when the problem is tied to a line; `offset` is the byte offset
    in the parsed input (for `CryptoAttribute.parse`, the character offset in the value).
    """


# --------------------------------------------------------------------------------------------
# SRTP crypto suites
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SuiteInfo:
    """What the suite needs to know about an SRTP crypto suite named in a=crypto."""

    name: str
    key_len: int
    """Master key length in bytes."""
    salt_len: int
    """Master salt length in bytes."""
    tag_len: int
    """SRTP authentication tag length in bytes."""
    null_cipher: bool
    """True when the suite does not encrypt (RFC 4568 NULL_* suites)."""
    pylibsrtp_profile: str | None
    """Name of the `pylibsrtp.Policy` profile constant, None when pylibsrtp has no profile.

    A name rather than the value keeps this module free of the media stack."""
    rfc: str


SRTP_SUITES: dict[str, SuiteInfo] = {
    info.name: info
    for info in (
        SuiteInfo(
            "AES_CM_128_HMAC_SHA1_80", 16, 14, 10, False, "SRTP_PROFILE_AES128_CM_SHA1_80", "4568"
        ),
        SuiteInfo(
            "AES_CM_128_HMAC_SHA1_32", 16, 14, 4, False, "SRTP_PROFILE_AES128_CM_SHA1_32", "4568"
        ),
        SuiteInfo("AEAD_AES_128_GCM", 16, 12, 16, False, "SRTP_PROFILE_AEAD_AES_128_GCM", "7714"),
        SuiteInfo("AEAD_AES_256_GCM", 32, 12, 16, False, "SRTP_PROFILE_AEAD_AES_256_GCM", "7714"),
        SuiteInfo("NULL_HMAC_SHA1_80", 16, 14, 10, True, None, "4568"),
        SuiteInfo("NULL_HMAC_SHA1_32", 16, 14, 4, True, None, "4568"),
    )
}

#: RFC 4568 session parameters that switch encryption off.
_UNENCRYPTED_PARAMS = frozenset({"UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP"})

_TAG = re.compile(r"[0-9]{1,9}")
_SUITE_NAME = re.compile(r"[A-Za-z0-9_]+")
_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_WSP_TOKEN = re.compile(r"[^ \t]+")
_MAX_LIFETIME_EXPONENT = 128  # bounds 2^n so that hostile input cannot ask for a huge integer
_MAX_DECIMAL_DIGITS = 40


def _fingerprint(secret: bytes) -> str:
    """First 16 hex digits of SHA-256: enough to tell keys apart, useless to recover one."""
    return hashlib.sha256(secret).hexdigest()[:16]


@dataclass(frozen=True, repr=False)
class CryptoAttribute:
    """One `a=crypto` attribute (RFC 4568 §9.1) with an inline SRTP master key and salt.

    Only the first key-param is decoded into `key`/`salt`/`lifetime`/`mki`; further key-params
    (several master keys selected by MKI) are kept verbatim in `extra_key_params`, as the media
    stack (pylibsrtp) cannot use MKI anyway. For an unknown suite the whole decoded key||salt is
    in `key` and `salt` is empty: the lengths are unknown, so they cannot be split.

    Building checks the value (tag range, suite name, key and salt lengths of a known suite, MKI)
    and raises `LocalProtocolError`; `unchecked=True` skips that so a step can send a bad one.
    """

    tag: int
    suite: str
    key: bytes
    salt: bytes
    lifetime: int | None = None
    """Master key lifetime in packets (`2^n` or decimal on the wire), None when absent."""
    mki: tuple[int, int] | None = None
    """(MKI value, MKI length in bytes), None when absent."""
    session_params: tuple[str, ...] = ()
    """Session parameters verbatim, e.g. ('KDR=10', 'UNENCRYPTED_SRTCP')."""
    extra_key_params: tuple[str, ...] = ()
    """Second and later key-params verbatim ('inline:...|...'), they hold keys: never shown."""
    unchecked: bool = field(default=False, kw_only=True, compare=False)
    raw: str | None = field(default=None, init=False, compare=False)
    """The value as parsed; `to_value()` returns it unchanged. Dropped by `replace()`."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", bytes(self.key))
        object.__setattr__(self, "salt", bytes(self.salt))
        object.__setattr__(self, "session_params", tuple(self.session_params))
        object.__setattr__(self, "extra_key_params", tuple(self.extra_key_params))
        if self.mki is not None:
            object.__setattr__(self, "mki", tuple(self.mki))
        if not self.unchecked:
            self._check()

    def _check(self) -> None:
        def bad(reason: str) -> LocalProtocolError:
            return LocalProtocolError(f"invalid a=crypto: {reason}")

        if not 0 <= self.tag <= 999_999_999:
            raise bad(f"tag {self.tag} is not 1 to 9 digits")
        if not _SUITE_NAME.fullmatch(self.suite):
            raise bad(f"suite {self.suite!r} is not a crypto-suite token")
        info = SRTP_SUITES.get(self.suite)
        if info is not None and (len(self.key), len(self.salt)) != (info.key_len, info.salt_len):
            raise bad(
                f"{self.suite} needs a {info.key_len}-byte key and a {info.salt_len}-byte salt, "
                f"got {len(self.key)} and {len(self.salt)}"
            )
        if self.lifetime is not None and self.lifetime < 1:
            raise bad("lifetime must be positive")
        if self.mki is not None:
            value, length = self.mki
            if not 1 <= length <= 128 or not 0 <= value < 256**length:
                raise bad(f"MKI {value}:{length} does not fit (length 1..128 bytes)")
        for text in (*self.session_params, *self.extra_key_params):
            if not text or any(c in text for c in " \t\r\n\0"):
                raise bad("session and extra key params must be non-empty, without whitespace")
        for text in self.extra_key_params:
            if ";" in text:
                raise bad("an extra key-param cannot contain ';'")

    # -- parse / serialise -------------------------------------------------------------------

    @classmethod
    def parse(cls, value: str) -> CryptoAttribute:
        """Parse the text after `a=crypto:`: `<tag> <suite> <key-params> [<session-params>]`.

        Raises `SdpParseError` whose offset is the character offset in `value`.
        """
        tokens = [(m.start(), m.group()) for m in _WSP_TOKEN.finditer(value)]
        if len(tokens) < 3:
            raise SdpParseError(
                "a=crypto needs '<tag> <crypto-suite> <key-params>'", offset=len(value)
            )
        (tag_at, tag_text), (suite_at, suite), (params_at, params) = tokens[:3]
        if not _TAG.fullmatch(tag_text):
            raise SdpParseError(f"tag {tag_text!r} is not 1 to 9 digits", offset=tag_at)
        if not _SUITE_NAME.fullmatch(suite):
            raise SdpParseError(f"crypto-suite {suite!r} is not a token", offset=suite_at)
        info = SRTP_SUITES.get(suite)
        key_params = params.split(";")
        key, salt, lifetime, mki = _parse_key_param(key_params[0], params_at, info)
        at = params_at + len(key_params[0]) + 1
        for extra in key_params[1:]:
            _parse_key_param(extra, at, info)  # validated, kept verbatim
            at += len(extra) + 1
        result = cls(
            int(tag_text),
            suite,
            key,
            salt,
            lifetime,
            mki,
            tuple(text for _, text in tokens[3:]),
            tuple(key_params[1:]),
            unchecked=True,
        )
        object.__setattr__(result, "raw", value)
        return result

    def to_value(self) -> str:
        """The text after `a=crypto:`; the parsed text itself when this object was parsed."""
        if self.raw is not None:
            return self.raw
        return self._value(base64.b64encode(self.key + self.salt).decode("ascii"))

    def _value(self, key_text: str) -> str:
        key_param = f"inline:{key_text}"
        if self.lifetime is not None:
            power = self.lifetime.bit_length() - 1
            is_power = self.lifetime == 1 << power
            key_param += f"|2^{power}" if is_power else f"|{self.lifetime}"
        if self.mki is not None:
            key_param += f"|{self.mki[0]}:{self.mki[1]}"
        params = ";".join((key_param, *self.extra_key_params))
        return " ".join((str(self.tag), self.suite, params, *self.session_params))

    # -- facts -------------------------------------------------------------------------------

    @property
    def suite_info(self) -> SuiteInfo | None:
        return SRTP_SUITES.get(self.suite)

    @property
    def is_known(self) -> bool:
        """True when the suite is in `SRTP_SUITES` (its key and salt lengths were checked)."""
        return self.suite in SRTP_SUITES

    @property
    def is_null(self) -> bool:
        """True when this offer does not encrypt: a NULL suite or UNENCRYPTED_SRTP/SRTCP."""
        info = self.suite_info
        return (info is not None and info.null_cipher) or any(
            p in _UNENCRYPTED_PARAMS for p in self.session_params
        )

    @property
    def fingerprint(self) -> str:
        """First 16 hex digits of SHA-256(key || salt): names the key in logs without showing it."""
        return _fingerprint(self.key + self.salt)

    @classmethod
    def generate(
        cls,
        tag: int,
        suite: str,
        *,
        lifetime: int | None = None,
        mki: tuple[int, int] | None = None,
        session_params: Iterable[str] = (),
    ) -> CryptoAttribute:
        """A fresh offer for a known suite with a random master key and salt (`secrets`)."""
        info = SRTP_SUITES.get(suite)
        if info is None:
            raise LocalProtocolError(f"cannot generate keys for unknown SRTP suite {suite!r}")
        return cls(
            tag,
            suite,
            secrets.token_bytes(info.key_len),
            secrets.token_bytes(info.salt_len),
            lifetime,
            mki,
            tuple(session_params),
        )

    def __repr__(self) -> str:
        extra = f", extra_key_params=<{len(self.extra_key_params)} hidden>"
        return (
            f"CryptoAttribute(tag={self.tag}, suite={self.suite!r}, "
            f"key_salt=<{len(self.key) + len(self.salt)} bytes sha256:{self.fingerprint}>, "
            f"lifetime={self.lifetime!r}, mki={self.mki!r}, "
            f"session_params={self.session_params!r}"
            f"{extra if self.extra_key_params else ''})"
        )

    def __str__(self) -> str:
        """The attribute value with the key replaced by its fingerprint."""
        shown = CryptoAttribute(
            self.tag,
            self.suite,
            self.key,
            self.salt,
            self.lifetime,
            self.mki,
            self.session_params,
            tuple(f"<sha256:{_inline_fingerprint(p)}>" for p in self.extra_key_params),
            unchecked=True,
        )
        return shown._value(f"<sha256:{self.fingerprint}>")


def _parse_key_param(
    text: str, at: int, info: SuiteInfo | None
) -> tuple[bytes, bytes, int | None, tuple[int, int] | None]:
    """Decode `inline:<key||salt>[|lifetime][|mki:length]`; `at` is its offset in the value."""
    method, colon, key_info = text.partition(":")
    if not colon or method.lower() != "inline":
        raise SdpParseError(f"key-param {method!r} is not 'inline:' (RFC 4568)", offset=at)
    at += len(method) + 1
    key_text, *rest = key_info.split("|")
    if not _B64.fullmatch(key_text) or len(key_text.rstrip("=")) % 4 == 1:
        raise SdpParseError("inline key||salt is not base64", offset=at)
    try:
        key_salt = base64.b64decode(key_text + "=" * (-len(key_text) % 4), validate=True)
    except binascii.Error:
        raise SdpParseError("inline key||salt is not base64", offset=at) from None
    if info is None:
        key, salt = key_salt, b""
    elif len(key_salt) != info.key_len + info.salt_len:
        raise SdpParseError(
            f"{info.name} needs {info.key_len + info.salt_len} bytes of key||salt "
            f"({info.key_len}+{info.salt_len}), got {len(key_salt)}",
            offset=at,
        )
    else:
        key, salt = key_salt[: info.key_len], key_salt[info.key_len :]
    at += len(key_text) + 1
    lifetime: int | None = None
    mki: tuple[int, int] | None = None
    if len(rest) > 2:
        raise SdpParseError("too many '|' fields in the inline key-param", offset=at)
    if len(rest) == 2:
        lifetime = _parse_lifetime(rest[0], at)
        mki = _parse_mki(rest[1], at + len(rest[0]) + 1)
    elif rest and ":" in rest[0]:
        mki = _parse_mki(rest[0], at)
    elif rest:
        lifetime = _parse_lifetime(rest[0], at)
    return key, salt, lifetime, mki


def _parse_lifetime(text: str, at: int) -> int:
    digits = text[2:] if text.startswith("2^") else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > _MAX_DECIMAL_DIGITS:
        raise SdpParseError(f"lifetime {text!r} is not decimal or 2^n", offset=at)
    number = int(digits)
    if text.startswith("2^"):
        if number > _MAX_LIFETIME_EXPONENT:
            raise SdpParseError(f"lifetime {text} is absurdly large", offset=at)
        return 1 << number
    if number == 0:
        raise SdpParseError("lifetime 0 is not a lifetime", offset=at)
    return number


def _parse_mki(text: str, at: int) -> tuple[int, int]:
    value_text, _, length_text = text.partition(":")
    if not (
        value_text.isascii()
        and value_text.isdigit()
        and len(value_text) <= 310
        and length_text.isascii()
        and length_text.isdigit()
        and len(length_text) <= 3
    ):
        raise SdpParseError(f"MKI {text!r} is not '<value>:<length>'", offset=at)
    value, length = int(value_text), int(length_text)
    if not 1 <= length <= 128 or value >= 256**length:
        raise SdpParseError(f"MKI {text!r}: value does not fit in 1..128 bytes", offset=at)
    return value, length


def _inline_fingerprint(key_param: str) -> str:
    """Fingerprint of the key in an `inline:` key-param (of its text when it is not base64)."""
    key_text = key_param.partition(":")[2].split("|")[0]
    try:
        secret = base64.b64decode(key_text + "=" * (-len(key_text) % 4), validate=True)
    except binascii.Error:
        secret = key_text.encode("utf-8", "replace")
    return _fingerprint(secret)


_INLINE_KEY = re.compile(r"(?i)(inline:)([^|;\s]*)")


def _redact_crypto(value: str | None) -> str | None:
    """An a=crypto value with every inline key replaced by its fingerprint (for repr)."""
    if value is None:
        return None
    return _INLINE_KEY.sub(
        lambda m: f"{m.group(1)}<sha256:{_inline_fingerprint(m.group())}>", value
    )


# --------------------------------------------------------------------------------------------
# SDP lines
# --------------------------------------------------------------------------------------------

Attribute = tuple[str, str | None]
"""(name, value); value None for a property attribute such as `a=rtcp-mux`."""
Line = tuple[str, str]
"""(type letter, value) of a line kept verbatim, e.g. ('b', 'AS:64')."""

_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_PROTO = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+(?:/[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+)*")
_DIGITS = re.compile(r"[0-9]+")
_BANDWIDTH = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+:[0-9]+")
_SPACED = re.compile(r"[^ ]+")
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

# RFC 8866 §5 order; the rank sorts the lines written from fields.
_SESSION_RANK = {"i": 0, "u": 1, "e": 2, "p": 3, "c": 4, "b": 5, "t": 6, "z": 7, "k": 8, "a": 9}
_MEDIA_RANK = {"i": 0, "c": 1, "b": 2, "k": 3, "a": 4}
_MEDIA_EXTRA = frozenset("icbk")  # 'c': media c= lines after the first


def _words(value: str) -> list[tuple[int, str]]:
    """(column, word) of the space-separated words; runs of spaces are tolerated."""
    return [(m.start(), m.group()) for m in _SPACED.finditer(value)]


@dataclass(frozen=True)
class Origin:
    """The `o=` line: `<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`."""

    username: str
    session_id: int
    session_version: int
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "127.0.0.1"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )

    def bumped(self) -> Origin:
        """The origin of the next version of the session (RFC 3264 §8: +1 on every change)."""
        return replace(self, session_version=self.session_version + 1)


@dataclass(frozen=True)
class Connection:
    """A `c=` line: `<nettype> <addrtype> <connection-address>`."""

    nettype: str
    addrtype: str
    address: str
    """As written, including any multicast `/ttl/count` suffix."""

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"

    @property
    def host(self) -> str:
        """The address without a multicast `/ttl` or `/count` suffix."""
        return self.address.split("/", 1)[0]


@dataclass(frozen=True)
class Timing:
    """A `t=` line with the `r=` lines that follow it (kept verbatim: they allow typed times)."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "repeats", tuple(self.repeats))


@dataclass(frozen=True)
class _Inherited:
    """Session-level values that a media description falls back on."""

    connection: Connection | None
    direction: str | None


def _check_text(what: str, text: str) -> None:
    """Builders refuse line breaks and NUL: they would forge extra SDP lines."""
    if not isinstance(text, str) or any(c in text for c in "\r\n\0"):
        raise LocalProtocolError(f"{what} {text!r} must be text without CR, LF or NUL")


def _check_token(what: str, text: str) -> None:
    if not isinstance(text, str) or not _TOKEN.fullmatch(text):
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
        (name, _redact_crypto(value) if name == "crypto" else value) for name, value in attributes
    )


def _redacted_lines(lines: tuple[Line, ...]) -> tuple[Line, ...]:
    # k= carries an encryption key in clear (RFC 8866 §5.12, obsolete but still a key).
    return tuple(
        (kind, value.partition(":")[0] + ":<hidden>" if kind == "k" else value)
        for kind, value in lines
    )


class _Attributes:
    """Attribute helpers shared by session and media descriptions (both hold `attributes`)."""

    attributes: tuple[Attribute, ...]

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
        if not _PROTO.fullmatch(proto):
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
        result = []
        for index, (name, value) in enumerate(self.attributes):
            if name == "crypto":
                try:
                    result.append(CryptoAttribute.parse(value or ""))
                except SdpParseError as exc:
                    raise self._crypto_error(index, exc) from None
        return result

    def _crypto_error(self, index: int, exc: SdpParseError) -> SdpParseError:
        if self._positions is None:
            return SdpParseError(
                f"a=crypto (attribute {index + 1} of m={self.media}): {exc.reason}"
            )
        line, offset = self._positions[index]
        return SdpParseError(
            f"line {line}: a=crypto: {exc.reason}",
            offset=offset + len("a=crypto:") + (exc.offset or 0),
        )

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
        inherited = _Inherited(self.connection, _direction_of(self.attributes))
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
            return b"".join(raw + b"\r\n" for _, raw in _raw_lines(self.raw))
        return "".join(line + "\r\n" for line in self.to_lines()).encode("utf-8")

    def __repr__(self) -> str:
        return _safe_repr(
            self,
            {
                "attributes": _redacted_attributes(self.attributes),
                "extra_lines": _redacted_lines(self.extra_lines),
            },
        )


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------


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


def _raw_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(offset, line without its line end) for each line; LF and CRLF both end a line."""
    position = 0
    while position < len(data):
        end = data.find(b"\n", position)
        stop = len(data) if end < 0 else end
        line = data[position:stop]
        yield position, line[:-1] if line.endswith(b"\r") else line
        position = stop + 1


def _lines(data: bytes) -> Iterator[_Line]:
    for number, (offset, raw) in enumerate(_raw_lines(data), start=1):
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
        if not _DIGITS.fullmatch(number) or len(number) > _MAX_DECIMAL_DIGITS:
            raise line.error(f"o= {name} {number!r} is not a decimal number")
    for token, name in ((nettype, "nettype"), (addrtype, "addrtype")):
        if not _TOKEN.fullmatch(token):
            raise line.error(f"o= {name} {token!r} is not a token")
    return Origin(username, int(sid), int(version), nettype, addrtype, address)


def _parse_connection(line: _Line) -> Connection:
    words = [word for _, word in _words(line.value)]
    if len(words) != 3 or not all(_TOKEN.fullmatch(w) for w in words[:2]):
        raise line.error("c= needs '<nettype> <addrtype> <connection-address>'")
    return Connection(*words)


def _parse_timing(line: _Line) -> Timing:
    words = [word for _, word in _words(line.value)]
    if (
        len(words) != 2
        or not all(_DIGITS.fullmatch(w) for w in words)
        or max(map(len, words)) > _MAX_DECIMAL_DIGITS
    ):
        raise line.error("t= needs '<start-time> <stop-time>' in decimal")
    return Timing(int(words[0]), int(words[1]))


def _check_bandwidth(line: _Line) -> None:
    if not _BANDWIDTH.fullmatch(line.value):
        raise line.error("b= needs '<bwtype>:<bandwidth>'")


def _parse_attribute(line: _Line) -> Attribute:
    name, colon, value = line.value.partition(":")
    if not _TOKEN.fullmatch(name):
        raise line.error(f"attribute name {name!r} is not a token")
    return (name, value if colon else None)


def _parse_media_line(line: _Line) -> tuple[str, int, int | None, str, tuple[str, ...]]:
    words = _words(line.value)
    if len(words) < 4:
        raise line.error("m= needs '<media> <port>[/<count>] <proto> <fmt> ...'")
    (_, media), (port_at, ports), (proto_at, proto), *formats = words
    if not _TOKEN.fullmatch(media):
        raise line.error(f"media {media!r} is not a token")
    port_text, slash, count_text = ports.partition("/")
    if not _DIGITS.fullmatch(port_text) or len(port_text) > 5 or int(port_text) > 65535:
        raise line.error(f"port {port_text!r} is not 0..65535", port_at)
    if slash and (not _DIGITS.fullmatch(count_text) or len(count_text) > 5 or not int(count_text)):
        raise line.error(f"number of ports {count_text!r} is not a positive integer", port_at)
    if not _PROTO.fullmatch(proto):
        raise line.error(f"proto {proto!r} is not a token", proto_at)
    for fmt_at, fmt in formats:
        if not _TOKEN.fullmatch(fmt):
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
