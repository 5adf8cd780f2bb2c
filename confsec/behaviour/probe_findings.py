"""A probe's judgement as a finding of `confsec probe`: the TLS probes and the sipvicious
probes report in one shape, whatever tool observed.

`severity` is 'fail' for a leak or a cracked password, 'info' for what is only worth knowing
(a UDP listener answers), 'inconclusive' when a probe could not judge (sipvicious crashes on a
SHA-256 challenge, for one).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from confsec.errors import Inconclusive, NonConformance


@dataclass(frozen=True)
class ProbeFinding:
    probe: str
    listener: str
    severity: str
    sentence: str

    def as_dict(self) -> dict[str, str]:
        return {
            "probe": self.probe,
            "listener": self.listener,
            "severity": self.severity,
            "sentence": self.sentence,
        }


def judged(probe: str, where: str, judge: Callable[[], None]) -> ProbeFinding | None:
    """A judgement as a `confsec probe` finding: None when it passes."""
    try:
        judge()
    except NonConformance as exc:
        return ProbeFinding(probe, where, "fail", str(exc))
    except Inconclusive as exc:
        return ProbeFinding(probe, where, "inconclusive", str(exc))
    return None


def decoy_users(n: int = 3) -> list[str]:
    """User names that surely do not exist, to compare refusals against."""
    return [f"nobody{secrets.token_hex(3)}" for _ in range(n)]
