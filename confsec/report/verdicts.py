"""The verdict model of conformance testing, kept distinct end to end.

pytest knows passed/failed/skipped/error; a conformance report needs five verdicts (ETSI/TTCN-3:
pass, fail, inconc, none, error). Steps signal the ones pytest lacks by raising `Inconclusive` or
`NotApplicable`; `classify()` maps any exception to its verdict in one place so that the pytest
plugin, the CLI and the tests agree on it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from confsec.errors import ConfsecError, PeerTimeout, RemoteProtocolError, TransportError


class Verdict(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    NOT_APPLICABLE = "not applicable"
    ERROR = "error"
    NOT_COVERED = "not covered"
    WAIVED = "waived"
    """A fail covered by an unexpired waiver (an accepted deviation): shown, never failing."""


class NonConformance(AssertionError, ConfsecError):
    """The system under test did something the requirement forbids: verdict fail.

    The only fail. Any other AssertionError (a bare `assert` in suite code, a library's) is an
    error of the suite, not a finding about the system under test."""


class Inconclusive(ConfsecError):
    """The check could not judge (the system did something outside what the check observes)."""


class NotApplicable(ConfsecError):
    """The system does not claim the optional capability this check is about."""


@dataclass(frozen=True)
class Evidence:
    """What a check observed: counts by what was counted, and the controls that passed.

    A pass must rest on an observation, so every check returns one of these and its step
    records it (`confsec.report.plugin.record_observation`); the verdict layer turns a pass whose
    evidence is empty (no count above zero) into inconclusive. Counts of findings that are zero
    ("0 shared key streams") are kept: they say what was looked for and not found.
    """

    counts: Mapping[str, int] = field(default_factory=dict)
    controls: tuple[str, ...] = ()
    """Positive controls that passed before a negative check counted ("bob admitted with his
    own certificate"): what shows the target was able to do the right thing."""

    @classmethod
    def of(cls, *controls: str, **counts: int) -> Evidence:
        """`Evidence.of(packets=312, streams=4)`; keyword underscores read as spaces."""
        return cls({k.replace("_", " "): int(v) for k, v in counts.items()}, tuple(controls))

    def __bool__(self) -> bool:
        return any(v > 0 for v in self.counts.values())

    def __add__(self, other: Evidence) -> Evidence:
        counts = dict(self.counts)
        for k, v in other.counts.items():
            counts[k] = counts.get(k, 0) + v
        return Evidence(
            counts, self.controls + tuple(c for c in other.controls if c not in self.controls)
        )

    def summary(self) -> str:
        """'4 streams, 312 packets, 0 shared key streams; controls: ...'."""
        text = ", ".join(f"{v} {k}" for k, v in self.counts.items()) or "nothing observed"
        if self.controls:
            text += "; controls: " + "; ".join(self.controls)
        return text

    def to_json(self) -> dict[str, object]:
        return {"counts": dict(self.counts), "controls": list(self.controls)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Evidence:
        counts = data.get("counts") or {}
        controls = data.get("controls") or []
        return cls(
            {str(k): int(v) for k, v in counts.items()},  # type: ignore[union-attr]
            tuple(str(c) for c in controls),  # type: ignore[union-attr]
        )


def example_title(name: str, params: Mapping[str, object]) -> str:
    """An outline's title with its example's values: '... with <suite>' -> '... with X'; a
    title with no placeholder gets the values after it: '... goes on (a request line ...)'."""
    title = name
    for key, value in params.items():
        title = title.replace(f"<{key}>", str(value))
    if params and title == name:
        title += " (" + ", ".join(str(v) for v in params.values()) + ")"
    return title


Observe = Callable[[Evidence], Evidence]
"""The type of the `observed` fixture: a step hands it what its check observed."""


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
