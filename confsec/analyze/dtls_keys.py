"""DTLS-SRTP keys from a key log: the TLS PRF, the RFC 5705 exporter and NSS key log lines.

DTLS-SRTP never sends the SRTP keys; both ends compute them from the handshake's master secret
(RFC 5764 §4.2). A capture holds the randoms and the negotiated profile, the endpoint's key log
(`CLIENT_RANDOM <client random> <master secret>`) the secret; this module turns the three into
the four SRTP master values. Kept apart from `confsec.analyze.dtls` (which re-exports it) because
it is pure computation, checked against OpenSSL's own exporter in the tests.

No secret appears in a repr: `key_fingerprint` names keys, counts name the key log.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from confsec.codec import dtls as wire
from confsec.errors import ConfigError, ConfsecError, LocalProtocolError
from confsec.media.ledger import key_fingerprint
from confsec.media.srtp import profile_for

DTLS_1_0 = 0xFEFF

CIPHER_SUITES: dict[int, str] = {
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA", 0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
    0x0033: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", 0x0039: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
    0x003C: "TLS_RSA_WITH_AES_128_CBC_SHA256", 0x003D: "TLS_RSA_WITH_AES_256_CBC_SHA256",
    0x0067: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", 0x006B: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256", 0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0x009E: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", 0x009F: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    0xC009: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", 0xC00A: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0xC023: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    0xC024: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    0xC028: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xC0AC: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM", 0xC0AD: "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
    0xC0AE: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", 0xC0AF: "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAA: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}  # fmt: skip
"""IANA names of the TLS 1.2 suites DTLS-SRTP stacks negotiate. The name says the PRF hash
(RFC 5246 §5: SHA-256 unless the suite says otherwise; the _SHA384 suites say SHA-384). A suite
not here gets no guess: a wrong hash would give wrong keys without a word."""


_NULL_SUITES = {0x0005: ("NULL_HMAC_SHA1_80", 16, 14), 0x0006: ("NULL_HMAC_SHA1_32", 16, 14)}
"""confsec.media.srtp does not run NULL ciphers; their key lengths are RFC 5764 §4.1.2's."""


def cipher_suite_name(suite: int) -> str:
    return CIPHER_SUITES.get(suite, f"cipher suite 0x{suite:04x}")


class NoDtlsKeys(ConfsecError):
    """The SRTP keys of an association cannot be derived; the message says why."""


def prf_hash(version: int, suite: int) -> str | None:
    """The PRF of a handshake: "md5-sha1" for DTLS 1.0 (the TLS 1.1 PRF), else the suite's hash;
    None for a suite not in `CIPHER_SUITES`."""
    if version == DTLS_1_0:
        return "md5-sha1"
    name = CIPHER_SUITES.get(suite)
    if name is None:
        return None
    return "sha384" if name.endswith("SHA384") else "sha256"


def srtp_suite(profile_id: int) -> tuple[str, int, int]:
    """(a=crypto suite name, master key length, master salt length) of a DTLS-SRTP profile.
    Raises `UnsupportedSuite` for a profile confsec does not know."""
    if profile_id in _NULL_SUITES:
        return _NULL_SUITES[profile_id]
    p = profile_for(wire.profile_name(profile_id))
    return p.name, p.key_len, p.salt_len


def _p_hash(name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    out, a = b"", seed
    while len(out) < length:
        a = hmac.digest(secret, a, name)
        out += hmac.digest(secret, a + seed, name)
    return out[:length]


def tls_prf(secret: bytes, label: bytes, seed: bytes, length: int, hash_name: str) -> bytes:
    """The TLS 1.2 PRF (RFC 5246 §5: P_hash over HMAC), or with "md5-sha1" the TLS 1.0/1.1 PRF
    (RFC 2246 §5: P_MD5 over the first half of the secret XOR P_SHA1 over the second)."""
    if hash_name != "md5-sha1":
        return _p_hash(hash_name, secret, label + seed, length)
    half = (len(secret) + 1) // 2
    md5 = _p_hash("md5", secret[:half], label + seed, length)
    sha1 = _p_hash("sha1", secret[len(secret) - half :], label + seed, length)
    return bytes(x ^ y for x, y in zip(md5, sha1, strict=True))


@dataclass(frozen=True)
class DerivedSrtpKeys:
    """The four RFC 5764 §4.2 values; unpacks as (client_key, client_salt, server_key,
    server_salt). Its repr shows fingerprints only."""

    client_key: bytes = field(repr=False)
    client_salt: bytes = field(repr=False)
    server_key: bytes = field(repr=False)
    server_salt: bytes = field(repr=False)

    def __iter__(self) -> Iterator[bytes]:
        return iter((self.client_key, self.client_salt, self.server_key, self.server_salt))

    def __repr__(self) -> str:
        c = key_fingerprint(self.client_key, self.client_salt)
        s = key_fingerprint(self.server_key, self.server_salt)
        return f"DerivedSrtpKeys(client={c}, server={s})"


def derive_srtp_keys(
    master_secret: bytes,
    client_random: bytes,
    server_random: bytes,
    profile_id: int,
    prf_hash: str = "sha256",
) -> DerivedSrtpKeys:
    """RFC 5764 §4.2: the RFC 5705 exporter, label "EXTRACTOR-dtls_srtp", no context, cut into
    client key, server key, client salt, server salt. With extended master secret (RFC 7627)
    the key log already holds the extended secret, so the derivation is the same."""
    if len(master_secret) != 48 or len(client_random) != 32 or len(server_random) != 32:
        raise LocalProtocolError("a master secret is 48 bytes and each random 32")
    if prf_hash != "md5-sha1" and prf_hash not in hashlib.algorithms_available:
        raise LocalProtocolError(f"no PRF hash {prf_hash!r}")
    _, klen, slen = srtp_suite(profile_id)
    seed = client_random + server_random
    out = tls_prf(master_secret, b"EXTRACTOR-dtls_srtp", seed, 2 * (klen + slen), prf_hash)
    ck, sk = out[:klen], out[klen : 2 * klen]
    cs, ss = out[2 * klen : 2 * klen + slen], out[2 * klen + slen :]
    return DerivedSrtpKeys(ck, cs, sk, ss)


# -- the key log ------------------------------------------------------------------------------


class KeyLog:
    """Master secrets by client random, from NSS key log lines `CLIENT_RANDOM <cr> <ms>` (what
    SSLKEYLOGFILE, OpenSSL's keylog callback and `confsec run` write). TLS 1.3 labels are
    skipped: DTLS-SRTP stacks in the field run DTLS 1.2."""

    def __init__(self) -> None:
        self._masters: dict[bytes, bytes] = {}
        self.malformed = 0
        """CLIENT_RANDOM lines that are not 64 + 96 hex digits."""

    def add_lines(self, text: str) -> None:
        for line in text.splitlines():
            fields = line.split()
            if not fields or fields[0] != "CLIENT_RANDOM":
                continue  # comments, blank lines, TLS 1.3 secrets
            if len(fields) != 3:
                self.malformed += 1
                continue
            try:
                cr, ms = bytes.fromhex(fields[1]), bytes.fromhex(fields[2])
            except ValueError:
                cr = ms = b""
            if len(cr) == 32 and len(ms) == 48:
                self._masters[cr] = ms
            else:
                self.malformed += 1

    def master_secret(self, client_random: bytes) -> bytes | None:
        return self._masters.get(client_random)

    def __len__(self) -> int:
        return len(self._masters)

    def __repr__(self) -> str:
        return f"KeyLog({len(self)} master secrets, {self.malformed} malformed lines)"


def parse_keylog(text: str) -> KeyLog:
    log = KeyLog()
    log.add_lines(text)
    return log


def read_keylog(path: Path) -> KeyLog:
    try:
        return parse_keylog(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the key log: {exc.strerror}") from None
