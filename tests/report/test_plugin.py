"""The five verdicts stay distinct from the steps to verdicts.json (pytester, in-process).

A tiny feature with one scenario per verdict is run through the real plugin; this pins the
mapping pass / fail / inconclusive / not applicable / error and the per-requirement roll-up,
including a requirement with no scenario (not covered), and the evidence rule: a pass needs
every Then-step to have recorded a non-empty observation, and only NonConformance is a fail.
"""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

FEATURE = """\
@req:R1
Feature: Verdict mapping
  Scenario: passes
    Given the step does "nothing"
    Then the check observed 3 packets

  Scenario: passes on nothing
    Given the step does "nothing"
    Then the check observed nothing

  Scenario: passes on zeros
    Given the step does "nothing"
    Then the check observed 0 packets

  Scenario: one check forgot
    Given the step does "nothing"
    Then the check observed 3 packets
    And the check observed nothing

  Scenario: asserts
    Given the step does "assert"

  Scenario: fails
    Given the step does "fail"

  Scenario: cannot judge
    Given the step does "inconclusive"

  Scenario: not claimed
    Given the step does "not-applicable"

  Scenario: breaks
    Given the step does "crash"
"""

FEATURE_R2 = """\
@req:R2
Feature: Second requirement
  Scenario: only passes
    Given the step does "nothing"
    Then the check observed 1 packets

  @pics:floor_control
  Scenario: optional capability
    Given the step does "nothing"

  Scenario: measures
    Given the step measures a latency of 12.5 ms in a media window of 1.5 s
    Then the check observed 2 packets
"""

STEPS = """\
import pytest
from pytest_bdd import given, parsers, scenarios, then
from confsec.report.plugin import record_observation
from confsec.errors import Inconclusive, NonConformance, NotApplicable
from confsec.observed import Evidence

pytest_plugins = ["confsec.report.plugin"]

@pytest.fixture(autouse=True)
def _pics(request):
    if any(m.args[0] == "floor_control" for m in request.node.iter_markers("pics")):
        raise NotApplicable("the target does not claim floor_control")

@given(parsers.parse("the step measures a latency of {ms:g} ms in a media window of {s:g} s"))
def measures(request, ms, s):
    request.node.user_properties.append(("rekey_latency", {"max_ms": ms, "note": "text"}))
    request.node.user_properties.append(("protocol_window_s", {"total": s, "media": s}))

@given(parsers.parse('the step does "{what}"'))
def step(what):
    if what == "fail":
        raise NonConformance("the system did the forbidden thing")
    if what == "inconclusive":
        raise Inconclusive("no answer to judge")
    if what == "not-applicable":
        raise NotApplicable("capability not claimed")
    if what == "crash":
        raise RuntimeError("bug in the suite")
    if what == "assert":
        assert what == "something else", "a bare assert in suite code"

@then(parsers.parse("the check observed {n:d} packets"))
def observed(request, n):
    record_observation(request.node, Evidence.of(packets=n))

@then("the check observed nothing")
def observed_nothing():
    pass
"""


@pytest.fixture
def verdicts(pytester: pytest.Pytester) -> dict:
    pytester.makefile(".feature", verdicts=FEATURE, second=FEATURE_R2)
    pytester.makeconftest(STEPS)
    pytester.makepyfile(test_bdd='from pytest_bdd import scenarios\nscenarios(".")\n')
    pytester.makeini("[pytest]\nbdd_features_base_dir = .\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--reports", "out")
    result.assert_outcomes(passed=3, failed=3, skipped=6, errors=0)
    return json.loads((pytester.path / "out" / "verdicts.json").read_text())


def test_each_scenario_keeps_its_own_verdict(verdicts: dict) -> None:
    r1 = next(r for r in verdicts["requirements"] if r["id"] == "R1")
    got = {s["name"]: s["verdict"] for s in r1["scenarios"]}
    assert got == {
        "passes": "pass",
        "passes on nothing": "inconclusive",
        "passes on zeros": "inconclusive",
        "one check forgot": "inconclusive",
        "asserts": "error",
        "fails": "fail",
        "cannot judge": "inconclusive",
        "not claimed": "not applicable",
        "breaks": "error",
    }
    reasons = {s["name"]: s["reason"] for s in r1["scenarios"]}
    assert "forbidden thing" in reasons["fails"]
    assert "RuntimeError" in reasons["breaks"]
    assert "a bare assert in suite code" in reasons["asserts"]
    assert "no check recorded an observation" in reasons["passes on nothing"]
    assert "'the check observed nothing' passed without recording" in reasons["one check forgot"]
    observed = {s["name"]: s["observed"] for s in r1["scenarios"]}
    assert observed["passes"]["summary"] == "3 packets"


def test_requirements_roll_up_and_gaps_are_listed(verdicts: dict) -> None:
    by_id = {r["id"]: r for r in verdicts["requirements"]}
    assert by_id["R1"]["verdict"] == "fail"  # a finding outranks the rest
    assert by_id["R2"]["verdict"] == "pass"  # pass + not applicable
    assert [s["verdict"] for s in by_id["R2"]["scenarios"]] == ["pass", "not applicable", "pass"]
    assert by_id["R3"]["verdict"] == "not covered"
    assert len(verdicts["requirements"]) == 15


def test_measured_numbers_and_protocol_windows_reach_verdicts_json(verdicts: dict) -> None:
    r2 = next(r for r in verdicts["requirements"] if r["id"] == "R2")
    s = next(s for s in r2["scenarios"] if s["name"] == "measures")
    assert s["numbers"] == {"rekey_latency.max_ms": 12.5}
    assert s["protocol_window_s"] == 1.5
    passes = next(s for s in r2["scenarios"] if s["name"] == "only passes")
    assert passes["numbers"] == {} and passes["protocol_window_s"] == 0.0
