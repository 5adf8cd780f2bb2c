"""Judging a check alone, as the verdict layer would: shared by the check tests."""

from __future__ import annotations

from collections.abc import Callable

from confsec.observed import Evidence
from confsec.report.verdicts import Verdict, classify


def judge(check: Callable[..., object], *args: object, **kwargs: object) -> tuple[Verdict, str]:
    """The verdict a scenario would get from `check` alone, as the plugin computes it
    (`classify`), and the reason, or on a pass the summary of the evidence it returned (a pass
    test also checks that summary: a pass on no evidence will be inconclusive)."""
    try:
        result = check(*args, **kwargs)
    except Exception as exc:
        return classify(exc), f"{type(exc).__name__}: {exc}"
    if isinstance(result, Evidence) and result:
        return Verdict.PASS, result.summary()
    return Verdict.PASS, f"no evidence returned ({result!r})"


def passes_on_evidence(check: Callable[..., object], *args: object) -> bool:
    verdict, why = judge(check, *args)
    return verdict == Verdict.PASS and not why.startswith("no evidence")
