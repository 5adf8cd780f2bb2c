"""Client certificates with one flaw each, for the R2 check that mutual TLS refuses them.

A service that claims mutual TLS authenticates its participants by their certificates, so it
must refuse one it cannot trust (RFC 5280 6.1 path validation: a trusted issuer, the validity
period) and one not issued for client authentication (RFC 5280 4.2.1.12: an extended key usage
without id-kp-clientAuth), not only a client that presents none. Each flawed certificate carries
the identity of a real participant (the subject and SANs of its valid certificate), so that the
flaw is the only thing that differs from the control.

Where they come from: a self-signed certificate and one from a CA the service never trusts the
suite mints itself, for any target (`confsec.pki.flawed_client_certs`), in a directory that is
removed once the connection is made. An expired, a not yet valid and a serverAuth-only
certificate must come from a CA the service trusts, i.e. the target's: its profile supplies them
(`[accounts.<name>.flawed_certs.<flaw>]`); without one the example is inconclusive and says so.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from confsec.errors import ConfigError, Inconclusive
from confsec.pki import flawed_client_certs
from confsec.target.model import CA_ISSUED_FLAWS, Account, Target

__all__ = ["FLAWS_BY_WORDS", "flawed_account"]

FLAWS_BY_WORDS = {
    "self-signed": "self-signed",
    "issued by an untrusted CA": "untrusted-ca",
    "expired": "expired",
    "not yet valid": "not-yet-valid",
    "not for client authentication": "server-auth-only",
}
"""The Gherkin's words for each flaw of `confsec.target.model.CLIENT_CERT_FLAWS`."""


@contextmanager
def flawed_account(target: Target, name: str, words: str) -> Iterator[tuple[Account, str]]:
    """`name`'s account presenting a client certificate that is `words` (a key of
    `FLAWS_BY_WORDS`), and that certificate described for the evidence.

    Raises `Inconclusive` when the certificate cannot be had: a flaw only the target's CA can
    issue that the profile does not supply, or no valid certificate to copy the identity from.
    """
    flaw = FLAWS_BY_WORDS.get(words)
    if flaw is None:
        raise ConfigError(
            f"no client certificate flaw {words!r}; the features may use: "
            + ", ".join(FLAWS_BY_WORDS)
        )
    account = target.account(name)
    what = f"{name}'s certificate, {words}"
    if flaw in CA_ISSUED_FLAWS:
        pair = account.flawed_certs.get(flaw)
        if pair is None:
            raise Inconclusive(
                f"the target profile gives no client certificate for {name} that is {words}: "
                "only a CA the service trusts can issue one, so the suite cannot mint it; add "
                f"[accounts.{name}.flawed_certs.{flaw}] with cert and key files"
            )
        cert, key = pair
        yield (
            dataclasses.replace(account, client_cert=cert, client_key=key),
            f"{what} (from the target profile: {cert.name})",
        )
        return
    if account.client_cert is None:
        raise Inconclusive(
            f"{name} has no valid client certificate in the target profile to copy the "
            f"identity from, so no certificate that is only {words} can be made"
        )
    with tempfile.TemporaryDirectory(prefix="confsec-flawed-cert-") as directory:
        minted = flawed_client_certs(directory, account.client_cert, (flaw,))[flaw]
        yield (
            dataclasses.replace(account, client_cert=minted.cert, client_key=minted.key),
            f"{what} (minted by the suite)",
        )
