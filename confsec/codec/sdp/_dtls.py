"""DTLS-SRTP in SDP: a=fingerprint (RFC 8122), a=setup (RFC 4145, RFC 5763) and a=tls-id (RFC 8842).

Like `_crypto`, this module parses one attribute value on its own and knows nothing of lines;
`MediaDescription.fingerprints`, `.setup` and `.tls_id` call it lazily and add the line number,
so that one malformed attribute leaves the rest of a description readable. `DtlsAttributes`,
mixed into both descriptions, holds the properties and builders of the two attributes that may
sit at either level. Bad wire input is an `SdpParseError` (offsets are character offsets in the
value); a bad build or a question that has no answer (the DTLS role of `actpass`) is a
`LocalProtocolError`.

A fingerprint is the hash of a public certificate, not a secret, but its 95-character value
is still abbreviated in `repr()` so that logs stay readable.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, Self, TypeVar

from confsec.errors import LocalProtocolError

from ._errors import SdpParseError
from ._grammar import TOKEN

__all__ = [
    "DTLS_SRTP_PROTOS",
    "HASH_LENGTHS",
    "DtlsAttributes",
    "FingerprintAttribute",
    "SetupRole",
    "answer_role",
    "certificate_matches",
    "check_setup_role",
    "check_tls_id",
    "dtls_role",
    "new_tls_id",
    "parse_tls_id",
]

DTLS_SRTP_PROTOS = frozenset({"UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"})
"""The m= protos of DTLS-SRTP (RFC 5764 §8), upper case: compare case-insensitively."""

HASH_LENGTHS: Mapping[str, int] = MappingProxyType(
    {"sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64, "md5": 16, "md2": 16}
)
"""Digest length in bytes of each hash-func the RFC 8122 §5 grammar names (lower case)."""

_HASHLIB = {"sha-1": "sha1", "sha-224": "sha224", "sha-256": "sha256", "sha-384": "sha384",
            "sha-512": "sha512"}  # fmt: skip
# RFC 8122 §5: implementations MUST NOT use MD2 or MD5 to compute or to verify fingerprints.
_FORBIDDEN = frozenset({"md2", "md5"})
# RFC 8122 §5.1 checks the fingerprints of the hash the endpoint considers most secure.
_STRENGTH = {"sha-1": 1, "sha-224": 2, "sha-256": 3, "sha-384": 4, "sha-512": 5}
_UHEX = frozenset("0123456789ABCDEF")
_HEX_LOWER = frozenset("abcdef")
_WHITESPACE = re.compile(r"\s")
_TLS_ID_CHAR = re.compile(r"[^A-Za-z0-9+/\-_]")
_TLS_ID_LENGTH = (20, 255)
_T = TypeVar("_T")


def _check_der(der: bytes) -> bytes:
    """The suite hashes certificates it holds: PEM or an empty buffer here is a bug."""
    if not isinstance(der, bytes | bytearray | memoryview):
        raise LocalProtocolError(f"a DER certificate is bytes, not {type(der).__name__}")
    der = bytes(der)
    if der.lstrip().startswith(b"-----BEGIN"):
        raise LocalProtocolError("PEM given where a DER certificate is expected")
    if not der.startswith(b"\x30"):
        raise LocalProtocolError("not a DER certificate (it must start with a SEQUENCE, 0x30)")
    return der


def _hashlib_name(hash_function: str) -> str:
    name = hash_function.lower()
    if name in _FORBIDDEN:
        raise LocalProtocolError(
            f"{name} MUST NOT be used to compute or verify fingerprints (RFC 8122 §5); "
            "check is_acceptable_hash first"
        )
    algorithm = _HASHLIB.get(name)
    if algorithm is None:
        raise LocalProtocolError(f"cannot compute {hash_function!r} fingerprints")
    return algorithm


def _hex(data: bytes) -> str:
    return ":".join(f"{b:02X}" for b in data)


@dataclass(frozen=True, repr=False)
class FingerprintAttribute:
    """One `a=fingerprint` (RFC 8122 §5): a hash of the DER certificate a (D)TLS peer presents.

    `hash_function` is kept in lower case (hash-func names are case-insensitive ABNF strings), so
    a parsed `SHA-256` equals a built `sha-256`. Building checks the value (a token, not md2/md5,
    the digest length of a known hash) and raises `LocalProtocolError`; `unchecked=True` skips
    that, and keeps the hash name as given, so that a step can send a bad one.
    """

    hash_function: str
    fingerprint: bytes
    """The digest itself (not its text)."""
    unchecked: bool = field(default=False, kw_only=True, compare=False)
    raw: str | None = field(default=None, init=False, compare=False)
    """The value as parsed; `to_value()` returns it unchanged. Dropped by `replace()`."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", bytes(self.fingerprint))
        if not self.unchecked:
            if not isinstance(self.hash_function, str) or not TOKEN.fullmatch(self.hash_function):
                raise LocalProtocolError(
                    f"invalid a=fingerprint: hash function {self.hash_function!r} is not a token"
                )
            object.__setattr__(self, "hash_function", self.hash_function.lower())
            self._check()

    def _check(self) -> None:
        def bad(reason: str) -> LocalProtocolError:
            return LocalProtocolError(f"invalid a=fingerprint: {reason}")

        name = self.hash_function
        if name in _FORBIDDEN:
            raise bad(f"{name} MUST NOT be used (RFC 8122 §5); unchecked=True sends it anyway")
        if not self.fingerprint:
            raise bad("the fingerprint is empty")
        expected = HASH_LENGTHS.get(name)
        if expected is not None and len(self.fingerprint) != expected:
            raise bad(f"{name} fingerprints are {expected} bytes, got {len(self.fingerprint)}")

    # -- parse / serialise -------------------------------------------------------------------

    @classmethod
    def parse(cls, value: str) -> FingerprintAttribute:
        """Parse the text after `a=fingerprint:`: `<hash-func> SP <fingerprint>`.

        The fingerprint is upper-case hex bytes joined by ':' (`2UHEX *(":" 2UHEX)`), as many as
        the hash gives for a known hash. md2 and md5 parse (the grammar allows them) but are not
        `is_acceptable_hash`. Raises `SdpParseError` whose offset is the character offset in
        `value`.
        """
        hash_text, space, hex_text = value.partition(" ")
        if not space:
            raise SdpParseError(
                "a=fingerprint needs '<hash-func> <fingerprint>'", offset=len(value)
            )
        if not TOKEN.fullmatch(hash_text):
            raise SdpParseError(f"hash-func {hash_text!r} is not a token", offset=0)
        at = len(hash_text) + 1
        if not hex_text:
            raise SdpParseError("the fingerprint is empty", offset=at)
        blank = _WHITESPACE.search(hex_text)
        if blank is not None:
            raise SdpParseError(
                "whitespace in or after the fingerprint (RFC 8122 §5: one SP, then hex bytes)",
                offset=at + blank.start(),
            )
        digest = bytearray()
        for part in hex_text.split(":"):
            digest.append(_parse_byte(part, at))
            at += len(part) + 1
        name = hash_text.lower()
        expected = HASH_LENGTHS.get(name)
        if expected is not None and len(digest) != expected:
            raise SdpParseError(
                f"{name} fingerprints are {expected} bytes, got {len(digest)}",
                offset=len(hash_text) + 1,
            )
        result = cls(name, bytes(digest), unchecked=True)
        object.__setattr__(result, "raw", value)
        return result

    def to_value(self) -> str:
        """The text after `a=fingerprint:`; the parsed text itself when this object was parsed.

        Written from the fields, the hex is upper case (`UHEX`)."""
        if self.raw is not None:
            return self.raw
        return f"{self.hash_function} {_hex(self.fingerprint)}"

    # -- certificates ------------------------------------------------------------------------

    @classmethod
    def of_certificate(cls, der: bytes, hash_function: str = "sha-256") -> FingerprintAttribute:
        """The fingerprint of a DER certificate (sha-256 is RFC 8122's preferred hash)."""
        algorithm = _hashlib_name(hash_function)
        return cls(hash_function.lower(), hashlib.new(algorithm, _check_der(der)).digest())

    def matches(self, der_certificate: bytes) -> bool:
        """True when this is the fingerprint of the DER certificate.

        Raises `LocalProtocolError` for md2/md5 (RFC 8122 §5: MUST NOT be verified) and for hash
        functions it cannot compute: check `is_acceptable_hash` first, a peer's choice of hash is
        a finding of its own, not a mismatch.
        """
        algorithm = _hashlib_name(self.hash_function)
        return hashlib.new(algorithm, _check_der(der_certificate)).digest() == self.fingerprint

    # -- facts -------------------------------------------------------------------------------

    @property
    def is_known(self) -> bool:
        """The hash is one the RFC 8122 grammar names (its digest length was checked)."""
        return self.hash_function.lower() in HASH_LENGTHS

    @property
    def is_acceptable_hash(self) -> bool:
        """A FIPS 180 hash this codec can verify: sha-1, sha-224, sha-256, sha-384 or sha-512.

        False for md2 and md5 (RFC 8122 §5: MUST NOT be used) and for unregistered tokens.
        sha-1 is acceptable but legacy: see `is_legacy_hash`.
        """
        return self.hash_function.lower() in _HASHLIB

    @property
    def is_legacy_hash(self) -> bool:
        """sha-1: still allowed by RFC 8122, but weaker than the preferred sha-256."""
        return self.hash_function.lower() == "sha-1"

    def __repr__(self) -> str:
        digest = self.fingerprint
        shown = _hex(digest) if len(digest) <= 6 else f"{_hex(digest[:4])}...{_hex(digest[-2:])}"
        return f"FingerprintAttribute({self.hash_function!r}, {shown} <{len(digest)} bytes>)"

    def __str__(self) -> str:
        return self.to_value()


def _parse_byte(part: str, at: int) -> int:
    """One `2UHEX` of a fingerprint; `at` is its offset in the attribute value."""
    if not part:
        raise SdpParseError("empty byte in the fingerprint (a ':' too many)", offset=at)
    if not set(part) <= _UHEX | _HEX_LOWER:
        raise SdpParseError(f"fingerprint byte {part!r} is not hex", offset=at)
    if set(part) & _HEX_LOWER:
        raise SdpParseError(
            f"fingerprint byte {part!r} is lower-case hex (RFC 8122 §5: upper case, UHEX)",
            offset=at,
        )
    if len(part) != 2:
        raise SdpParseError(f"fingerprint byte {part!r} is not two hex digits", offset=at)
    return int(part, 16)


def certificate_matches(fingerprints: Iterable[FingerprintAttribute], der: bytes) -> bool:
    """RFC 8122 §5.1: the certificate matches one of the fingerprints made with the most secure
    acceptable hash among them. md2, md5 and unknown hashes are ignored; False when none is
    left, as the endpoint then MUST NOT establish the connection."""
    usable = [f for f in fingerprints if f.is_acceptable_hash]
    if not usable:
        return False
    strongest = max(_STRENGTH[f.hash_function.lower()] for f in usable)
    return any(f.matches(der) for f in usable if _STRENGTH[f.hash_function.lower()] == strongest)


# -- a=setup ---------------------------------------------------------------------------------


class SetupRole(StrEnum):
    """The `a=setup` roles (RFC 4145 §4). A `str`: `SetupRole.ACTIVE == "active"`."""

    ACTIVE = "active"
    """Opens the connection: the DTLS client."""
    PASSIVE = "passive"
    """Accepts the connection: the DTLS server."""
    ACTPASS = "actpass"
    """Either; the answerer decides (the offer of RFC 5763 §5)."""
    HOLDCONN = "holdconn"
    """No connection for now."""

    @classmethod
    def parse(cls, value: str) -> SetupRole:
        """The role of an `a=setup` value; ABNF strings are case-insensitive (RFC 5234 §2.3).

        Raises `SdpParseError` (offset 0) for anything else."""
        if value.isascii():
            try:
                return cls(value.lower())
            except ValueError:
                pass
        if not value:
            raise SdpParseError("a=setup needs a role", offset=0)
        raise SdpParseError(
            f"setup role {value!r} is not active, passive, actpass or holdconn (RFC 4145 §4)",
            offset=0,
        )


def check_setup_role(role: SetupRole | str) -> SetupRole:
    """`SetupRole.parse` for builders and helpers: raises `LocalProtocolError`."""
    try:
        return SetupRole.parse(role)
    except (SdpParseError, AttributeError):
        raise LocalProtocolError(f"{role!r} is not an a=setup role (RFC 4145 §4)") from None


_ANSWER = {
    SetupRole.ACTPASS: SetupRole.ACTIVE,  # RFC 5763 §5: active is RECOMMENDED (no extra RTT)
    SetupRole.ACTIVE: SetupRole.PASSIVE,
    SetupRole.PASSIVE: SetupRole.ACTIVE,
    SetupRole.HOLDCONN: SetupRole.HOLDCONN,
}


def answer_role(offer_role: SetupRole | str) -> SetupRole:
    """The role an answerer takes for an offered role (RFC 4145 §4.1, RFC 5763 §5).

    actpass -> active (the RFC 5763 recommendation: the handshake starts with the answer),
    active -> passive, passive -> active, holdconn -> holdconn.
    """
    return _ANSWER[check_setup_role(offer_role)]


def dtls_role(setup_role: SetupRole | str) -> Literal["client", "server"]:
    """active is the DTLS client, passive the DTLS server (RFC 5763 §5).

    Raises `LocalProtocolError` for actpass and holdconn: they decide no role, so an answer
    that carries one must be judged before asking.
    """
    role = check_setup_role(setup_role)
    if role is SetupRole.ACTIVE:
        return "client"
    if role is SetupRole.PASSIVE:
        return "server"
    raise LocalProtocolError(f"setup:{role} decides no DTLS role (only active and passive do)")


# -- a=tls-id --------------------------------------------------------------------------------


def parse_tls_id(value: str) -> str:
    """Check an `a=tls-id` value (RFC 8842 §4): 20 to 255 of `A-Z a-z 0-9 + / - _`.

    Returns it unchanged (it is compared case-sensitively); raises `SdpParseError`.
    """
    bad = _TLS_ID_CHAR.search(value)
    if bad is not None:
        raise SdpParseError(
            f"tls-id character {bad.group()!r} is not A-Z, a-z, 0-9, '+', '/', '-' or '_'",
            offset=bad.start(),
        )
    low, high = _TLS_ID_LENGTH
    if not low <= len(value) <= high:
        raise SdpParseError(
            f"tls-id has {len(value)} characters, RFC 8842 §4 needs {low} to {high}",
            offset=min(len(value), high),
        )
    return value


def check_tls_id(value: str) -> str:
    """`parse_tls_id` for builders: raises `LocalProtocolError`."""
    if not isinstance(value, str):
        raise LocalProtocolError(f"tls-id {value!r} is not text")
    try:
        return parse_tls_id(value)
    except SdpParseError as exc:
        raise LocalProtocolError(f"invalid a=tls-id: {exc.reason}") from None


def new_tls_id() -> str:
    """A fresh tls-id: 32 characters of URL-safe base64 from `secrets`, 192 random bits (RFC
    8842 §4 asks for at least 120 bits of entropy)."""
    return secrets.token_urlsafe(24)


# -- on the descriptions ---------------------------------------------------------------------


class DtlsAttributes:
    """`a=fingerprint` and `a=setup` of a session or media description, parsed when read.

    Both may sit at session or media level (RFC 8122 §5, RFC 4145 §4); a media description
    without its own reads the session's. Errors name the line of a parsed media-level attribute,
    and the index of a session-level one (the parser keeps no line numbers at that level).
    """

    if TYPE_CHECKING:  # provided by the descriptions (_model._Attributes)

        def _parsed(self, name: str, parse: Callable[[str], _T]) -> list[_T]: ...

        def _single(self, name: str, parse: Callable[[str], _T]) -> _T | None: ...

        def _replaced(self, name: str, values: Iterable[str]) -> Self: ...

        def _level(self, name: str) -> DtlsAttributes: ...

    @property
    def fingerprints(self) -> list[FingerprintAttribute]:
        """Every `a=fingerprint`, in order; a media description without any has the session's.

        Raises `SdpParseError` for the first malformed one."""
        return self._level("fingerprint")._parsed("fingerprint", FingerprintAttribute.parse)

    @property
    def setup(self) -> SetupRole | None:
        """The `a=setup` role (a `SetupRole`, a lower-case `str`), None when absent; a media
        description without one has the session's.

        Raises `SdpParseError` for an unknown role or a second `a=setup` at the same level."""
        return self._level("setup")._single("setup", SetupRole.parse)

    def with_fingerprints(self, fingerprints: Iterable[FingerprintAttribute]) -> Self:
        """A copy whose `a=fingerprint` lines are these, placed where the first old one was."""
        return self._replaced("fingerprint", [f.to_value() for f in fingerprints])

    def with_setup(self, role: SetupRole | str | None) -> Self:
        """A copy with `a=setup:role` instead of any other (none when `role` is None)."""
        return self._replaced("setup", [] if role is None else [check_setup_role(role).value])
