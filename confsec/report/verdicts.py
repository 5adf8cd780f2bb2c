"""The verdict model of conformance testing, kept distinct end to end.

pytest knows passed/failed/skipped/error; a conformance report needs five verdicts (ETSI/TTCN-3:
pass, fail, inconc, none, error). Steps signal the ones pytest lacks by raising `Inconclusive` or
`NotApplicable`; `classify()` maps any exception to its verdict in one place so that the pytest
plugin, the CLI and the tests agree on it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from confsec.errors import (
    Inconclusive,
    NonConformance,
    NotApplicable,
    PeerTimeout,
    RemoteProtocolError,
    TransportError,
)


class Verdict(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    NOT_APPLICABLE = "not applicable"
    ERROR = "error"
    NOT_COVERED = "not covered"
    WAIVED = "waived"
    """A fail covered by an unexpired waiver (an accepted deviation): shown, never failing."""


def example_title(name: str, params: Mapping[str, object]) -> str:
    """An outline's title with its example's values: '... with <suite>' -> '... with X'; a
    title with no placeholder gets the values after it: '... goes on (a request line ...)'."""
    title = name
    for key, value in params.items():
        title = title.replace(f"<{key}>", str(value))
    if params and title == name:
        title += " (" + ", ".join(str(v) for v in params.values()) + ")"
    return title


# Worst first: a definite finding outranks trouble of our own, which outranks "could not tell".
_RANK = {
    Verdict.FAIL: 0,
    Verdict.ERROR: 1,
    Verdict.INCONCLUSIVE: 2,
    Verdict.WAIVED: 3,
    Verdict.PASS: 4,
    Verdict.NOT_APPLICABLE: 5,
    Verdict.NOT_COVERED: 6,
}


def classify(exc: BaseException | None) -> Verdict:
    """The verdict a scenario gets when its steps end with `exc` (None: they all passed).

    A timeout or a lost connection to the system under test is inconclusive unless a step turned
    it into a finding: the suite could not observe what the check needs, which says nothing about
    conformance. A protocol violation by the peer is likewise inconclusive here; steps that check
    for a specific behaviour raise NonConformance themselves.
    """
    if exc is None:
        return Verdict.PASS
    if isinstance(exc, NonConformance):
        return Verdict.FAIL
    if isinstance(exc, NotApplicable):
        return Verdict.NOT_APPLICABLE
    if isinstance(exc, Inconclusive | PeerTimeout | TransportError | RemoteProtocolError):
        return Verdict.INCONCLUSIVE
    return Verdict.ERROR


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """The verdict of a requirement from those of its scenarios (empty: not covered)."""
    vs = list(verdicts)
    if not vs:
        return Verdict.NOT_COVERED
    return min(vs, key=_RANK.__getitem__)
