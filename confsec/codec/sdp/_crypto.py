"""The a=crypto attribute (RFC 4568 §9.1): SDES master keys for SRTP, parsed and built.

A malformed a=crypto is an RFC 4568 problem, not an RFC 8866 one, so this module parses one
attribute value on its own; the media description calls it lazily and adds the line number.
Keys never appear in `repr()` or `str()`: a short SHA-256 fingerprint stands in for them, so
logs and reports can say *which* key without disclosing it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from confsec.errors import LocalProtocolError

from ._errors import SdpParseError
from ._grammar import MAX_DECIMAL_DIGITS
from ._suites import SRTP_SUITES, SuiteInfo

__all__ = ["CryptoAttribute", "redact_crypto"]

#: RFC 4568 session parameters that switch encryption off.
_UNENCRYPTED_PARAMS = frozenset({"UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP"})

_TAG = re.compile(r"[0-9]{1,9}")
_SUITE_NAME = re.compile(r"[A-Za-z0-9_]+")
_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_WSP_TOKEN = re.compile(r"[^ \t]+")
_MAX_LIFETIME_EXPONENT = 128  # bounds 2^n so that hostile input cannot ask for a huge integer


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
    if not digits.isascii() or not digits.isdigit() or len(digits) > MAX_DECIMAL_DIGITS:
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


def redact_crypto(value: str | None) -> str | None:
    """An a=crypto value with every inline key replaced by its fingerprint (for repr)."""
    if value is None:
        return None
    return _INLINE_KEY.sub(
        lambda m: f"{m.group(1)}<sha256:{_inline_fingerprint(m.group())}>", value
    )
