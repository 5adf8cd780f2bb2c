"""The root of confsec's error tree.

Every error that crosses a package boundary derives from `ConfsecError`, so a caller can tell our
own, classified trouble from a bug. The split follows h11: a *remote* error means the system under
test broke a rule (a finding: fail or inconclusive); a *local* error means the suite itself is
wrong (verdict: error); a *configuration* error means the user gave us something unusable.
"""

from __future__ import annotations


class ConfsecError(Exception):
    """Base class of every error confsec raises on purpose."""


class RemoteProtocolError(ConfsecError):
    """The peer sent something that breaks the protocol.

    `offset` is where in the input the problem was found (None when not about bytes);
    `status_hint` is the SIP status a server would answer with (400 by default).
    """

    def __init__(self, reason: str, *, offset: int | None = None, status_hint: int = 400):
        super().__init__(reason)
        self.reason = reason
        self.offset = offset
        self.status_hint = status_hint

    def __str__(self) -> str:
        where = f" at byte {self.offset}" if self.offset is not None else ""
        return f"{self.reason}{where}"


class LocalProtocolError(ConfsecError):
    """The suite tried to build or send something invalid: a bug in confsec or a step."""


class ConfigError(ConfsecError):
    """A target profile, option or file given by the user is unusable."""


class PeerTimeout(ConfsecError):
    """The system under test did not answer within the configured time."""


class TransportError(ConfsecError):
    """A connection could not be made or was lost (refused, reset, TLS failure)."""


class TlsVerificationError(TransportError):
    """The peer's certificate did not validate (wrong domain, unknown CA, expired...)."""


class TargetUnreachable(ConfsecError):
    """The system under test cannot be reached at all: the environment broke, not a finding."""


# -- verdicts a check signals (the verdict model itself is confsec.report.verdicts) -------


class NonConformance(AssertionError, ConfsecError):
    """The system under test did something the requirement forbids: verdict fail.

    The only fail. Any other AssertionError (a bare `assert` in suite code, a library's) is an
    error of the suite, not a finding about the system under test."""


class Inconclusive(ConfsecError):
    """The check could not judge (the system did something outside what the check observes)."""


class NotApplicable(ConfsecError):
    """The system does not claim the optional capability this check is about."""
