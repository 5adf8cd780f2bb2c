"""The overall conformance statement and the exit code, decided in one place.

The CLI's exit code, the findings header and the auditor report must never disagree, so all three
call `assess()`. Order of precedence: a finding at or above the `--fail-on` severity makes the run
non-conformant; otherwise trouble of our own (error) outranks "could not tell" (inconclusive).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EXIT_CONFORMANT = 0
EXIT_NONCONFORMANT = 1
EXIT_INCONCLUSIVE = 2
EXIT_USAGE = 3
EXIT_ERROR = 4

SEVERITIES = ("critical", "normal", "minor")
"""Allure names, most severe first: shall -> critical, should -> normal, observation -> minor."""


@dataclass(frozen=True)
class Assessment:
    exit_code: int
    label: str
    statement: str
    below_threshold: tuple[str, ...] = ()


def at_or_above(severity: str, threshold: str) -> bool:
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return order.get(severity, len(SEVERITIES)) <= order.get(threshold, len(SEVERITIES))


def assess(doc: dict[str, Any], fail_on: str = "minor") -> Assessment:
    reqs = doc["requirements"]
    by = {v: [r["id"] for r in reqs if r["verdict"] == v] for v in {r["verdict"] for r in reqs}}
    failing = [r for r in reqs if r["verdict"] == "fail"]
    gating = [r["id"] for r in failing if at_or_above(r.get("severity", "minor"), fail_on)]
    below = tuple(r["id"] for r in failing if r["id"] not in gating)
    gaps = by.get("not covered", []) + by.get("not run", [])
    gap_text = f" Not assessed: {', '.join(gaps)}." if gaps else ""
    waived = by.get("waived", [])
    waived_text = f" Accepted deviations (waived): {', '.join(waived)}." if waived else ""
    if gating:
        return Assessment(
            EXIT_NONCONFORMANT,
            "non-conformant",
            f"The system under test does not conform: {', '.join(gating)} failed."
            + waived_text
            + gap_text,
            below,
        )
    if by.get("error"):
        return Assessment(
            EXIT_ERROR,
            "error",
            f"No conformance statement: the suite or its environment broke while checking "
            f"{', '.join(by['error'])}." + gap_text,
            below,
        )
    if by.get("inconclusive"):
        return Assessment(
            EXIT_INCONCLUSIVE,
            "inconclusive",
            f"No failure observed, but {', '.join(by['inconclusive'])} could not be judged."
            + gap_text,
            below,
        )
    below_text = (
        f" Findings below the --fail-on {fail_on} threshold: {', '.join(below)}." if below else ""
    )
    return Assessment(
        EXIT_CONFORMANT,
        "conformant",
        "Every applicable requirement that was assessed passed."
        + below_text
        + waived_text
        + gap_text,
        below,
    )


def exit_code(doc: dict, fail_on: str = "minor") -> int:
    """The exit code for a verdicts document: `confsec run`, `confsec report` and `confsec
    analyze` all end with this one rule (see `assess`)."""
    return assess(doc, fail_on).exit_code
