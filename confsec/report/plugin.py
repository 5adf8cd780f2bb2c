"""pytest plugin: turns scenario outcomes into conformance verdicts and writes verdicts.json.

Verdicts are computed on the worker that ran the scenario (`pytest_runtest_makereport`) and travel
in `report.user_properties`, which pytest-xdist serialises; the controller only aggregates
(`pytest_runtest_logreport`). So `pytest -n 2` and `pytest` give the same file.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from confsec import __version__
from confsec.errors import Inconclusive, NotApplicable
from confsec.evidence import scenario_slug
from confsec.observed import Evidence
from confsec.report.allure_labels import (
    PROTOCOL_WINDOW,
    measured,
    register_markers,
    requirement_marks,
    severity_of,
)
from confsec.report.verdicts import Verdict, classify, combine, example_title
from confsec.requirements import REQUIREMENTS

_VERDICT = "confsec_verdict"
_META = "confsec_meta"
EVIDENCE = "confsec_observed"
NOTE = "confsec_note"
"""A user property carrying an observation reported beside the verdict: {text, severity}."""
"""The user property under which a step records what a check observed (`record_observation`)."""
NO_EVIDENCE = (
    "Inconclusive: every step passed, but no check recorded an observation: a pass must rest "
    "on evidence (packets judged, messages seen, connections tried)"
)


UNEVIDENCED = "confsec_unevidenced_step"
"""A Then-step that passed without recording a non-empty observation (its text)."""


def pytest_bdd_before_step(request: pytest.FixtureRequest, step: Any) -> None:
    request.node._confsec_step_mark = len(request.node.user_properties)  # type: ignore[attr-defined]


def pytest_bdd_after_step(request: pytest.FixtureRequest, step: Any) -> None:
    """Every Then-step is a check, and every check must say what it observed: one that
    recorded nothing (or only zeros) is noted, and the scenario cannot pass on it."""
    if getattr(step, "type", "") != "then":
        return
    mark = getattr(request.node, "_confsec_step_mark", 0)
    if not evidence_of(request.node.user_properties[mark:]):
        request.node.user_properties.append((UNEVIDENCED, step.name))


def record_observation(node: pytest.Item, evidence: Evidence) -> Evidence:
    """Keep what a check observed with the scenario; the verdict layer reads it."""
    node.user_properties.append((EVIDENCE, evidence.to_json()))
    return evidence


def evidence_of(props: Any) -> Evidence:
    total = Evidence()
    for key, value in props:
        if key == EVIDENCE:
            total = total + Evidence.from_json(value)
    return total


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("confsec", "confsec conformance run")
    group.addoption(
        "--reports",
        default=None,
        help="directory for verdicts.json (default: reports/ beside conftest.py)",
    )
    group.addoption(
        "--req",
        action="append",
        default=[],
        metavar="ID",
        help="run only the scenarios of this requirement (repeatable), e.g. --req R2",
    )
    group.addoption(
        "--confsec-progress",
        action="store_true",
        default=False,
        help="print one line per scenario with its verdict (used by `confsec run`)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "req(id): the requirement a scenario verifies (@req:R4)")
    config.addinivalue_line(
        "markers", "pics(capability): optional capability the scenario needs (@pics:mutual_tls)"
    )
    register_markers(config)
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(VerdictCollector(config), "confsec-verdicts")


def pytest_bdd_apply_tag(tag: str, function: Any) -> bool | None:
    """`@req:R4` -> mark.req("R4"), `@pics:x` -> mark.pics("x"); the rest as pytest-bdd does."""
    kind, sep, value = tag.partition(":")
    if sep and kind in ("req", "pics"):
        getattr(pytest.mark, kind)(value)(function)
        if kind == "req":
            for mark in requirement_marks(value):
                mark(function)
        return True
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, str] | None:
    """Under `confsec run` the per-scenario lines replace pytest's progress dots."""
    if config.getoption("--confsec-progress") and (report.when == "call" or not report.passed):
        return report.outcome, "", report.outcome.upper()
    return None


def requirement_ids(item: pytest.Item) -> list[str]:
    return [m.args[0] for m in item.iter_markers("req") if m.args]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = {r.upper() for r in config.getoption("--req")}
    collector: VerdictCollector | None = config.pluginmanager.get_plugin("confsec-verdicts")
    keep, drop = [], []
    for item in items:
        reqs = requirement_ids(item)
        if wanted and not wanted.intersection(reqs):
            drop.append(item)
            if collector is not None:
                collector.deselected_reqs.update(reqs)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None] | pytest.TestReport:
    report: pytest.TestReport = yield
    exc = call.excinfo.value if call.excinfo is not None else None
    if isinstance(exc, pytest.skip.Exception):
        verdict = Verdict.NOT_APPLICABLE
    elif report.failed and exc is None:
        verdict = Verdict.ERROR
    else:
        verdict = classify(exc)
        if call.when != "call" and verdict is Verdict.FAIL:
            # An assertion in a fixture is the suite's trouble, not a finding.
            verdict = Verdict.ERROR
    if isinstance(exc, Inconclusive | NotApplicable):
        # pytest has no such outcome: show it as skipped, with the verdict in the reason.
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"{verdict}: {exc}")
    reason = "" if exc is None else f"{type(exc).__name__}: {exc}"
    if (
        verdict is Verdict.PASS
        and call.when == "call"
        and _scenario_template(item) is not None
        and (missing := _missing_evidence(item))
    ):
        # The central rule: no check may pass on nothing. Shown as skipped, like Inconclusive.
        verdict, reason = Verdict.INCONCLUSIVE, missing
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"{verdict}: {reason}")
    if verdict is Verdict.INCONCLUSIVE and call.when == "call":
        reason += _starvation_note(item, reason)
    report.user_properties.append((_VERDICT, (call.when, str(verdict), reason[:2000])))
    if call.when == "setup":
        template = _scenario_template(item)
        callspec = getattr(item, "callspec", None)
        meta = {
            "reqs": requirement_ids(item),
            "pics": [m.args[0] for m in item.iter_markers("pics") if m.args],
            "scenario": template.name if template else item.name,
            "feature": template.feature.name if template else "",
            "params": dict(callspec.params.get("_pytest_bdd_example", {})) if callspec else {},
        }
        report.user_properties.append((_META, json.loads(json.dumps(meta, default=str))))
        item._confsec_title = example_title(meta["scenario"], meta["params"])  # type: ignore[attr-defined]
    return report


STARVED_LAG_S = 0.1
"""Loop lag from which an inconclusive verdict's reason names the suite's own lateness."""


def _missing_evidence(item: pytest.Item) -> str:
    """Why the scenario's pass rests on nothing, or '' when every check observed something."""
    if not evidence_of(item.user_properties):
        return NO_EVIDENCE
    bare = [value for key, value in item.user_properties if key == UNEVIDENCED]
    if bare:
        return (
            f"Inconclusive: the check '{bare[0]}' passed without recording what it observed: "
            "a pass must rest on evidence"
        )
    return ""


def _starvation_note(item: pytest.Item, reason: str) -> str:
    """An inconclusive verdict on a starved machine says so: the measured lateness of the
    scenario's conference run (its `lateness()`), when it is worth naming."""
    conf = getattr(item, "funcargs", {}).get("conf")
    lateness = getattr(conf, "lateness", None)
    if not callable(lateness):
        return ""
    try:
        measured = lateness()
    except Exception:  # evidence must never change a verdict
        return ""
    if measured.loop_lag_s < STARVED_LAG_S or "ran up to" in reason:  # named already
        return ""
    return f" (meanwhile {measured.describe()})"


def _scenario_template(item: pytest.Item) -> Any:
    """pytest-bdd's scenario (name, feature) behind a collected test, if it is one."""
    from pytest_bdd.scenario import scenario_wrapper_template_registry

    return scenario_wrapper_template_registry.get(getattr(item, "obj", None))


@dataclass
class ScenarioResult:
    nodeid: str
    meta: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, tuple[Verdict, str]] = field(default_factory=dict)
    duration_s: float = 0.0
    finished: float = 0.0
    protocol_window_s: float = 0.0
    """Sum of the protocol windows the scenario's checks waited for (its inherent time)."""
    numbers: dict[str, float] = field(default_factory=dict)
    """What the steps measured (rekey latency, ...), flattened as `name.key`."""
    evidence: Evidence = field(default_factory=Evidence)
    """What the checks observed: what a pass rests on."""
    notes: list[dict[str, str]] = field(default_factory=list)
    """Observations reported beside the verdict ({text, severity})."""

    @property
    def title(self) -> str:
        return example_title(self.meta.get("scenario", self.nodeid), self.meta.get("params", {}))

    @property
    def verdict(self) -> Verdict:
        call = self.phases.get("call")
        setup = self.phases.get("setup")
        teardown = self.phases.get("teardown")
        if setup and setup[0] is not Verdict.PASS:
            return setup[0]
        if call is None:
            return Verdict.ERROR
        if call[0] is Verdict.PASS and teardown and teardown[0] is not Verdict.PASS:
            return Verdict.ERROR
        return call[0]

    @property
    def reason(self) -> str:
        for when in ("setup", "call", "teardown"):
            if when in self.phases and self.phases[when][1]:
                return self.phases[when][1]
        return ""


class VerdictCollector:
    """Aggregates per-scenario verdicts on the controller and writes verdicts.json."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.results: dict[str, ScenarioResult] = {}
        self.deselected_reqs: set[str] = set()
        self.started = time.time()
        self._tty = sys.stderr.isatty()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        res = self.results.setdefault(report.nodeid, ScenarioResult(report.nodeid))
        res.duration_s += report.duration
        res.finished = max(res.finished, report.start + report.duration)
        for key, value in report.user_properties:
            if key == _VERDICT and value[0] == report.when:
                res.phases[report.when] = (Verdict(value[1]), value[2])
            elif key == _META:
                res.meta = value
            elif report.when == "teardown":
                # The item's properties reach every phase's report; the teardown's are complete.
                if key == PROTOCOL_WINDOW:
                    res.protocol_window_s = float(value.get("total", 0.0))
                elif key == EVIDENCE:
                    res.evidence = res.evidence + Evidence.from_json(value)
                elif key == NOTE:
                    res.notes.append(dict(value))
                else:
                    res.numbers.update(measured([(key, value)]))
        if report.when == "teardown" and self.config.getoption("--confsec-progress"):
            reqs = ",".join(res.meta.get("reqs", [])) or "-"
            done = sum(1 for r in self.results.values() if "teardown" in r.phases)
            total = getattr(self.config, "_confsec_total", "?")
            line = f"[{done}/{total}] {reqs:<6} {res.verdict:<14} {res.title}"
            # On a terminal the "running" status line is overwritten; in CI logs (no TTY) only
            # this one plain line per scenario appears.
            clear = "\r\033[K" if self._tty else ""
            print(clear + line, file=sys.stderr, flush=True)

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        """On a TTY, show the scenario now running on one line that the next result replaces."""
        if not (self._tty and self.config.getoption("--confsec-progress")):
            return
        done = sum(1 for r in self.results.values() if "teardown" in r.phases)
        total = getattr(self.config, "_confsec_total", "?")
        name = location[2] if location else nodeid
        sys.stderr.write(f"\r\033[K[{done}/{total}] running {name[:100]}")
        sys.stderr.flush()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.config._confsec_total = len(session.items)  # type: ignore[attr-defined]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not any(r.meta.get("reqs") for r in self.results.values()):
            return  # not a conformance run (e.g. the project's own tests)
        out = reports_dir(self.config)
        out.mkdir(parents=True, exist_ok=True)
        doc = build_verdicts(
            self.results.values(),
            self.deselected_reqs,
            started=self.started,
            extra=getattr(self.config, "_confsec_run_info", {}),
            reports=out,
        )
        (out / "verdicts.json").write_text(json.dumps(doc, indent=2) + "\n")


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _evidence_path(reports: Path | None, nodeid: str) -> str | None:
    """The scenario's evidence directory relative to reports/, if the run wrote one."""
    rel = f"evidence/{scenario_slug(nodeid)}"
    return rel if reports is not None and (reports / rel).is_dir() else None


def reports_dir(config: pytest.Config) -> Path:
    opt = config.getoption("--reports")
    return Path(opt) if opt else Path(config.rootpath) / "reports"


def build_verdicts(
    results: Any,
    deselected_reqs: set[str],
    *,
    started: float,
    extra: dict[str, Any],
    reports: Path | None = None,
) -> dict[str, Any]:
    """verdicts.json: one object per catalogued requirement, covered or not."""
    by_req: dict[str, list[ScenarioResult]] = {r.id: [] for r in REQUIREMENTS}
    for res in results:
        for req in res.meta.get("reqs", []):
            by_req.setdefault(req, []).append(res)
    requirements = []
    for req in REQUIREMENTS:
        scen = by_req[req.id]
        if scen:
            verdict = str(combine(s.verdict for s in scen))
        elif req.id in deselected_reqs:
            verdict = "not run"
        else:
            verdict = str(Verdict.NOT_COVERED)
        requirements.append(
            {
                "id": req.id,
                "strength": req.strength,
                "severity": severity_of(req.id),
                "clause": req.clause,
                "title": req.title,
                "verdict": verdict,
                "scenarios": [
                    {
                        "name": s.meta.get("scenario", s.nodeid),
                        "title": s.title,
                        "feature": s.meta.get("feature", ""),
                        "nodeid": s.nodeid,
                        "params": s.meta.get("params", {}),
                        "verdict": str(s.verdict),
                        "reason": s.reason,
                        "duration_s": round(s.duration_s, 3),
                        "protocol_window_s": round(s.protocol_window_s, 3),
                        "numbers": {k: round(v, 3) for k, v in sorted(s.numbers.items())},
                        "finished": _iso(s.finished or time.time()),
                        "evidence": _evidence_path(reports, s.nodeid),
                        "observed": {
                            **s.evidence.to_json(),
                            "summary": s.evidence.summary(),
                        },
                        "notes": s.notes,
                    }
                    for s in scen
                ],
            }
        )
    counts: dict[str, int] = {}
    for r in requirements:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    return {
        "suite": {"name": "confsec", "version": __version__},
        **extra,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 3),
        "summary": counts,
        "requirements": requirements,
    }
