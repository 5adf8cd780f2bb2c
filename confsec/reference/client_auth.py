"""How the reference's SIP/TLS listener judges client certificates, and the ways vendors get it
wrong (the defect switches of R2 mutual TLS).

Compliant: OpenSSL's own verification for a TLS server (`CERT_REQUIRED`: SSL_VERIFY_PEER and
SSL_VERIFY_FAIL_IF_NO_PEER_CERT) against the run's CA only. That is RFC 5280 6.1 path validation
(a trusted issuer, the validity period) plus the purpose a server asks of a client certificate
("sslclient": an extended key usage, if present, must include id-kp-clientAuth, RFC 5280
4.2.1.12). Nothing here changes that unless a defect switch asks for it.

The defects are the bugs vendors ship, one at a time:

- `client-cert-ignores-validity`: X509_V_FLAG_NO_CHECK_TIME, the flag a deployment sets to
  "fix" a clock problem; an expired or not yet valid certificate passes.
- `client-cert-ignores-eku`: the context's purpose set to X509_PURPOSE_ANY, as a server does that
  reuses one verification set-up for every kind of peer; a serverAuth-only certificate passes.
- `client-cert-any-ca`: a verify callback that overrides "unable to get the issuer" and
  "self-signed" errors, the classic workaround for clients with their own CA; a self-signed
  certificate or one from any CA passes (the validity period and the purpose are still checked).

`ssl` exposes neither the purpose nor a verify callback, so those two reach libssl through
ctypes, on the SSL_CTX of the Python context. Where that cannot be done safely (the context's
layout is not the one checked below) the switch raises `ConfigError` instead of quietly
testing a compliant server.
"""

from __future__ import annotations

import ctypes
import ssl

from confsec.errors import ConfigError

__all__ = ["CLIENT_CERT_DEFECTS", "apply_client_cert_defects"]

CLIENT_CERT_DEFECTS = frozenset(
    {"client-cert-ignores-validity", "client-cert-ignores-eku", "client-cert-any-ca"}
)

_NO_CHECK_TIME = 0x200000  # X509_V_FLAG_NO_CHECK_TIME (OpenSSL >= 1.1.0)
_PURPOSE_ANY = 7  # X509_PURPOSE_ANY
_VERIFY_PEER_REQUIRED = 0x01 | 0x02  # SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
# X509_V_ERR_*: the issuer errors a "trust our customers' CAs" callback waves through.
_ISSUER_ERRORS = frozenset(
    {
        2,  # UNABLE_TO_GET_ISSUER_CERT
        18,  # DEPTH_ZERO_SELF_SIGNED_CERT
        19,  # SELF_SIGNED_CERT_IN_CHAIN
        20,  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        21,  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
    }
)

_VerifyCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


def apply_client_cert_defects(context: ssl.SSLContext, defects: frozenset[str]) -> None:
    """Weaken `context` (a server context that requires client certificates) as `defects`
    say; with none of `CLIENT_CERT_DEFECTS` it is left as it is."""
    if "client-cert-ignores-validity" in defects:
        context.verify_flags |= _NO_CHECK_TIME
    if "client-cert-ignores-eku" in defects:
        lib, ctx = _libssl(context)
        if lib.SSL_CTX_set_purpose(ctx, _PURPOSE_ANY) != 1:
            raise ConfigError("client-cert-ignores-eku: SSL_CTX_set_purpose failed")
    if "client-cert-any-ca" in defects:
        lib, ctx = _libssl(context)
        callback = _any_ca_callback(lib)
        # libssl calls it for every handshake: it must live as long as the context.
        context.confsec_verify_callback = callback  # type: ignore[attr-defined]
        lib.SSL_CTX_set_verify(ctx, _VERIFY_PEER_REQUIRED, callback)


def _any_ca_callback(lib: ctypes.CDLL) -> object:
    @_VerifyCallback
    def verify(preverify_ok: int, store: int) -> int:
        if preverify_ok:
            return 1
        return 1 if lib.X509_STORE_CTX_get_error(store) in _ISSUER_ERRORS else 0

    return verify


def _libssl(context: ssl.SSLContext) -> tuple[ctypes.CDLL, int]:
    """The libssl `_ssl` is linked against, and the SSL_CTX* of `context`.

    CPython's PySSLContext starts with the object header and then `SSL_CTX *ctx` (3.7 to 3.13).
    The pointer is only used once libssl confirms it: the verify mode and the options it reads
    there must be the ones the Python object reports.
    """
    import _ssl

    lib = ctypes.CDLL(_ssl.__file__)
    lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    lib.SSL_CTX_set_purpose.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VerifyCallback]
    lib.SSL_CTX_set_verify.restype = None
    lib.X509_STORE_CTX_get_error.argtypes = [ctypes.c_void_p]
    ptr = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if (
        context.verify_mode != ssl.CERT_REQUIRED
        or not ptr
        or lib.SSL_CTX_get_verify_mode(ptr) != _VERIFY_PEER_REQUIRED
        or lib.SSL_CTX_get_options(ptr) != context.options
    ):
        raise ConfigError(
            "this Python's ssl module does not expose its SSL_CTX as expected: the client "
            "certificate defect switches cannot be applied"
        )
    return lib, ptr
