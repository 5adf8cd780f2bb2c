"""Waivers reach junit.xml and the Allure results, the files CI systems and dashboards read."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from confsec.report.allure_waivers import mark_waived
from confsec.report.junit import annotate_junit

OUTLINE = "A null cipher offer is refused"
NODE = "features/test_requirements.py::test_a_null_cipher_offer_is_refused"


def scenario(param: str, verdict: str) -> dict:
    s = {
        "name": OUTLINE,
        "nodeid": f"{NODE}[{param}]",
        "params": {"offer": param},
        "verdict": verdict,
        "reason": "NonConformance: accepted",
    }
    if verdict == "waived":
        s |= {"justification": "lab interop", "waiver_expires": "2099-12-31"}
    return s


def doc(*scenarios: dict, extra_req: dict | None = None) -> dict:
    reqs = [{"id": "R3", "scenarios": list(scenarios)}]
    return {"requirements": reqs + ([extra_req] if extra_req else [])}


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0"
 failures="2" skipped="0" tests="2"><testcase classname="features.test_requirements"
 name="test_a_null_cipher_offer_is_refused[NULL_HMAC_SHA1_80]"><properties><property
 name="confsec_verdict" value="('teardown', 'pass', '')" /></properties><failure
 message="NonConformance: accepted">trace</failure></testcase><testcase
 classname="features.test_requirements"
 name="test_a_null_cipher_offer_is_refused[UNENCRYPTED_SRTP]">
 <failure message="NonConformance: accepted">trace</failure></testcase></testsuite></testsuites>
"""


def cases(path: Path) -> dict[str, ET.Element]:
    root = ET.parse(path).getroot()
    return {c.get("name", "").split("[")[1][:-1]: c for c in root.iter("testcase")}


def test_waived_case_becomes_skipped_with_the_justification(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    d = doc(scenario("NULL_HMAC_SHA1_80", "waived"), scenario("UNENCRYPTED_SRTP", "fail"))
    assert annotate_junit(path, d) == 1
    suite = next(ET.parse(path).getroot().iter("testsuite"))
    assert (suite.get("failures"), suite.get("skipped")) == ("1", "1")
    c = cases(path)
    waived, failed = c["NULL_HMAC_SHA1_80"], c["UNENCRYPTED_SRTP"]
    skipped = waived.find("skipped")
    assert waived.find("failure") is None and skipped is not None
    assert skipped.get("message") == "waived until 2099-12-31: lab interop"
    assert "trace" in (skipped.text or "")
    assert failed.find("failure") is not None and failed.find("skipped") is None
    props = {p.get("name"): p.get("value") for p in waived.iter("property")}
    assert props == {
        "confsec.requirement": "R3",
        "confsec.verdict": "waived",
        "confsec.reason": "NonConformance: accepted",
        "confsec.title": "A null cipher offer is refused",  # the doc carries no title here
        "confsec.evidence": "",  # a fail rests on its reason, not on a pass's evidence
    }


def test_a_case_waived_for_one_requirement_but_failing_another_stays_a_failure(
    tmp_path: Path,
) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    other = {"id": "O2", "scenarios": [scenario("NULL_HMAC_SHA1_80", "fail")]}
    d = doc(scenario("NULL_HMAC_SHA1_80", "waived"), extra_req=other)
    assert annotate_junit(path, d) == 0
    case = cases(path)["NULL_HMAC_SHA1_80"]
    assert case.find("failure") is not None
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["confsec.requirement"] == "R3,O2"


def allure_result(tmp_path: Path, param: str) -> Path:
    path = tmp_path / f"{param}-result.json"
    result = {
        "name": OUTLINE,
        "status": "failed",
        "statusDetails": {"message": "NonConformance: accepted"},
        "parameters": [{"name": "offer", "value": param}],
        "labels": [{"name": "requirement", "value": "R3"}],
    }
    path.write_text(json.dumps(result))
    return path


def test_allure_result_of_a_waived_scenario_is_marked(tmp_path: Path) -> None:
    waived = allure_result(tmp_path, "NULL_HMAC_SHA1_80")
    failed = allure_result(tmp_path, "UNENCRYPTED_SRTP")
    d = doc(scenario("NULL_HMAC_SHA1_80", "waived"), scenario("UNENCRYPTED_SRTP", "fail"))
    assert mark_waived(tmp_path, d) == 1
    w = json.loads(waived.read_text())
    assert w["status"] == "failed"
    assert w["statusDetails"]["message"].startswith("Waived until 2099-12-31: lab interop")
    assert w["statusDetails"]["muted"] and w["statusDetails"]["known"]
    assert {"name": "tag", "value": "waived"} in w["labels"]
    assert "muted" not in json.loads(failed.read_text())["statusDetails"]
