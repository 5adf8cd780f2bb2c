"""TLS contexts for SIP and BFCP over TLS, and the identity of the peer.

Why a module for a few lines of `ssl`: every context the suite makes must behave the same way,
and the defaults of `ssl` are not what a conformance suite wants:

- Trust is only what we are given (the run's test CA or the target's CA): no system store unless
  `ca_file` is None, so a target cannot pass on a certificate the test PKI did not issue.
- Hostname verification is always on for clients; the suite connects by IP address and passes
  `server_hostname=<domain>`, so the check is about the SIP domain.
- `keylog_filename` is set whenever a key log path is given (a bare SSLContext ignores
  SSLKEYLOGFILE), so an auditor can decrypt the capture; the file is created with mode 0600.
- Bad files are the user's problem, not a crash: a missing, unreadable, malformed or encrypted
  certificate or key raises `ConfigError` that names the file and says what to do.

Note for negative tests: with TLS 1.3, a server that requires a client certificate lets the
client's handshake complete; the refusal (an alert) only arrives at the client's first read. An
asyncio stream reports it as end of stream (`read()` returns b""); a blocking socket's `recv()`
raises `SSLError` (TLSV13_ALERT_CERTIFICATE_REQUIRED), or a write raises `SSLEOFError`.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.x509.oid import NameOID

from confsec.errors import ConfigError, LocalProtocolError, RemoteProtocolError
from confsec.pki import fingerprint_sha256

__all__ = ["PeerCert", "client_context", "peer_identity", "server_context"]

StrPath = str | os.PathLike[str]

_HINT = "give a readable PEM file (TestPki.create() makes a test PKI)"


def client_context(
    ca_file: StrPath | None,
    cert_file: StrPath | None = None,
    key_file: StrPath | None = None,
    keylog_file: StrPath | None = None,
    *,
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
) -> ssl.SSLContext:
    """A client context: verifies the server against `ca_file` and checks the hostname.

    `ca_file` None means the system trust store (a deployed target with a public certificate).
    `cert_file` (with `key_file`, or a PEM holding both) is presented when the server asks.
    """
    if key_file is not None and cert_file is None:
        raise ConfigError(f"a client key ({key_file}) was given without its certificate")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname, CERT_REQUIRED
    context.minimum_version = minimum_version
    if ca_file is None:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        _load_ca(context, ca_file)
    if cert_file is not None:
        _load_cert_chain(context, cert_file, key_file)
    if keylog_file is not None:
        _set_keylog(context, keylog_file)
    return context


def server_context(
    cert_file: StrPath,
    key_file: StrPath | None,
    ca_file: StrPath | None = None,
    require_client_cert: bool = False,
    keylog_file: StrPath | None = None,
    *,
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
) -> ssl.SSLContext:
    """A server context presenting `cert_file`/`key_file`.

    With `ca_file`, client certificates from that CA are asked for: required when
    `require_client_cert`, else optional (CERT_OPTIONAL: a client without one still connects,
    and `peer_identity` returns None).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = minimum_version
    _load_cert_chain(context, cert_file, key_file)
    if ca_file is not None:
        _load_ca(context, ca_file)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    elif require_client_cert:
        raise ConfigError("require_client_cert needs ca_file, the CA that issues client certs")
    if keylog_file is not None:
        _set_keylog(context, keylog_file)
    return context


@dataclass(frozen=True)
class PeerCert:
    """Who the peer's certificate says it is."""

    subject_cn: str | None
    """Subject common name (the first one), None when the subject has none."""
    dns_names: tuple[str, ...]
    """subjectAltName DNS names."""
    uris: tuple[str, ...]
    """subjectAltName URIs, e.g. 'sip:alice@conf.example.test' (RFC 5922 §7.1)."""
    fingerprint_sha256: str
    """SHA-256 of the DER certificate, RFC 8122 form ('AB:CD:...')."""
    der: bytes = field(repr=False)

    @classmethod
    def from_der(cls, der: bytes) -> PeerCert:
        """Decode a certificate the peer presented; `RemoteProtocolError` if it is not one."""
        try:
            cert = x509.load_der_x509_certificate(der)
            names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            try:
                san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            except x509.ExtensionNotFound:
                dns: list[str] = []
                uris: list[str] = []
            else:
                dns = san.get_values_for_type(x509.DNSName)
                uris = san.get_values_for_type(x509.UniformResourceIdentifier)
            common_name = names[0].value if names else None
        except (ValueError, x509.DuplicateExtension) as exc:  # bad DER or bad extensions
            raise RemoteProtocolError(f"peer certificate cannot be decoded: {exc}") from None
        return cls(
            common_name if isinstance(common_name, str) else None,
            tuple(dns),
            tuple(uris),
            fingerprint_sha256(der),
            der,
        )


class _HasPeerCert(Protocol):
    def getpeercert(self, binary_form: bool = ...) -> object: ...


def peer_identity(ssl_object: _HasPeerCert) -> PeerCert | None:
    """The identity in the certificate the peer presented, None when it presented none.

    `ssl_object` is an `ssl.SSLSocket` or `ssl.SSLObject` (asyncio:
    `writer.get_extra_info('ssl_object')`). The certificate is read in binary form and decoded
    with `cryptography`, because `getpeercert()` returns an empty dict for any certificate it
    did not verify (CERT_OPTIONAL / CERT_NONE contexts).
    """
    try:
        der = ssl_object.getpeercert(binary_form=True)
    except ValueError:
        raise LocalProtocolError("peer_identity() called before the TLS handshake") from None
    if der is None:
        return None
    if not isinstance(der, bytes):
        raise LocalProtocolError(f"getpeercert() returned {type(der).__name__}, not DER bytes")
    return PeerCert.from_der(der)


# ------------------------------------------------------------------------------------------------


def _readable(path: StrPath, what: str) -> Path:
    """Open the file ourselves first: ssl's errors ('PEM lib', FileNotFoundError without a
    name) do not tell a user which file is wrong or what to do."""
    file = Path(path)
    try:
        with file.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot read the {what} {file}: {reason}; {_HINT}") from None
    return file


def _load_ca(context: ssl.SSLContext, ca_file: StrPath) -> None:
    file = _readable(ca_file, "CA certificate file")
    try:
        context.load_verify_locations(cafile=file)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"the CA certificate file {file} holds no PEM certificate ({exc.reason or exc}); "
            f"{_HINT}"
        ) from None


def _encrypted_key() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal and hang an unattended run.
    raise ConfigError("the private key is encrypted; give an unencrypted PEM key")


def _load_cert_chain(context: ssl.SSLContext, cert_file: StrPath, key_file: StrPath | None) -> None:
    cert = _readable(cert_file, "certificate file")
    key = _readable(key_file, "private key file") if key_file is not None else None
    try:
        context.load_cert_chain(cert, key, password=_encrypted_key)
    except ConfigError as exc:
        raise ConfigError(f"{key or cert}: {exc}") from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            problem = "the key does not belong to the certificate"
        else:
            problem = f"not a PEM certificate and private key ({exc.reason or exc})"
        names = f"{cert} with key {key}" if key else f"{cert}"
        raise ConfigError(f"cannot use {names}: {problem}; {_HINT}") from None


def _set_keylog(context: ssl.SSLContext, keylog_file: StrPath) -> None:
    """Set `keylog_filename`, creating the file with mode 0600 first: it holds the secrets that
    decrypt the capture (ssl would create it with the umask's mode)."""
    try:
        fd = os.open(keylog_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        context.keylog_filename = os.fspath(keylog_file)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the TLS key log {keylog_file}: {exc.strerror or exc}; "
            "give a writable path"
        ) from None
