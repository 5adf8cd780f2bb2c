"""A check's judgement of a capture, and the rules every judgement of `confsec analyze` shares.

Apart from `confsec.analyze.command` so that an observer with judgements of its own (DTLS-SRTP,
`confsec.analyze.dtls_checks`) can build them without importing the command, which imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from confsec.analyze.findings import Finding, Unjudged
from confsec.observed import Evidence
from confsec.report.verdicts import Verdict

NAMED = 5
"""Unjudged streams named in a verdict's reason; capture-findings.json lists them all."""


@dataclass
class Judgement:
    name: str
    requirement: str
    verdict: Verdict
    reason: str
    evidence: Evidence = field(default_factory=Evidence)
    """What the check observed: what the verdict rests on."""


def findings_text(fs: list[Finding]) -> str:
    return "; ".join(f"{f.sentence} ({f.count} packets, e.g. frames {f.frames})" for f in fs)


def named(us: list[Unjudged]) -> str:
    text = "; ".join(u.describe() for u in us[:NAMED])
    if len(us) > NAMED:
        text += f"; and {len(us) - NAMED} more (capture-findings.json lists them)"
    return text


def earned(j: Judgement) -> Judgement:
    """One rule for every check, in one place: a pass with nothing counted is no pass."""
    if j.verdict is Verdict.PASS and not j.evidence:
        return Judgement(
            j.name,
            j.requirement,
            Verdict.INCONCLUSIVE,
            f"nothing was judged ({j.evidence.summary()}): {j.reason}",
            j.evidence,
        )
    return j
