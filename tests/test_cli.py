"""`confsec run` end to end: what it writes, its exit codes, secrets, integrity and waivers.

Each run is a real `confsec run` in a child process against the embedded reference on loopback
(as a user or a pipeline starts it), with its own reports/, evidence/ and signing key under
tmp_path. The compliant run is shared by the tests that only read its output.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from confsec.evidence.secrets import Secret, load_inventory, scan
from confsec.pki import TestPki
from confsec.report import manifest
from confsec.report.allure_html import find_allure, remote_urls
from confsec.requirements import REQUIREMENTS
from tests.cli_runner import ROOT, CliResult, Run, compliant_run, confsec

NULL_CIPHER = "A null cipher offer is refused"


def verify(directory: Path) -> CliResult:
    return confsec("verify", str(directory), timeout=60)


@pytest.fixture(scope="module")
def compliant(tmp_path_factory: pytest.TempPathFactory) -> Run:
    # The whole suite, shared with test_self_validation (tests/cli_runner.py).
    return compliant_run(tmp_path_factory)


# -- outputs -------------------------------------------------------------------------------------


def test_compliant_run_is_conformant_and_writes_every_report(compliant: Run) -> None:
    assert compliant.code == 0, compliant.output[-3000:]
    r = compliant.reports
    for name in (
        "verdicts.json",
        "findings.json",
        "junit.xml",
        "auditor-report.html",
        "auditor-report.json",
        "MANIFEST.json",
        "MANIFEST.sig",
    ):
        assert (r / name).is_file(), name
    assert any((r / "allure-results").glob("*-result.json"))
    assert "overall: conformant" in compliant.output
    assert "reports written in" in compliant.output


def test_junit_carries_one_verdict_per_case(compliant: Run) -> None:
    cases = list(ET.parse(compliant.reports / "junit.xml").getroot().iter("testcase"))
    n = len({s["nodeid"] for s in compliant.scenarios().values()})
    assert len(cases) >= n
    for case in cases:
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert props["confsec.verdict"] in ("pass", "not applicable"), props
        ids = {r.id for r in REQUIREMENTS}
        assert set(props["confsec.requirement"].split(",")) <= ids, props
        assert not any(name.startswith("confsec_") for name in props), props


def test_one_file_allure_html_is_offline(compliant: Run) -> None:
    if find_allure(ROOT) is None:
        assert "Allure HTML not written: npm's allure 3 is not installed" in compliant.output
        pytest.skip("npm's allure 3 is not installed (.ci/run installs it)")
    html = (compliant.reports / "allure-report" / "index.html").read_text()
    assert "googletagmanager" not in html and "gtag(" not in html
    assert remote_urls(html) == []


def test_allure_results_carry_labels_links_and_evidence(compliant: Run) -> None:
    results = [
        json.loads(p.read_text())
        for p in (compliant.reports / "allure-results").glob("*-result.json")
    ]
    r3 = [t for t in results if {"name": "requirement", "value": "R3"} in t["labels"]]
    assert r3
    t = r3[0]
    assert {"name": "severity", "value": "critical"} in t["labels"]
    assert any(lb["name"] == "feature" for lb in t["labels"])
    assert any(lb["name"] == "suite" and lb["value"].startswith("R3") for lb in t["labels"])
    assert any("33.829" in (lk.get("name") or "") for lk in t["links"])
    names = {a["name"] for a in t["attachments"]}
    assert {
        "SIP ladder (redacted)",
        "key-stream ledger",
        "pcap slice (redacted)",
        "measured numbers",
    } <= names
    assert any(t.get("parameters") for t in r3), "outline parameters are reported"


def test_auditor_report_lists_all_fifteen_requirements(compliant: Run) -> None:
    html = (compliant.reports / "auditor-report.html").read_text()
    for req in REQUIREMENTS:
        assert f'<tr id="{req.id}">' in html, req.id
    rep = compliant.json("auditor-report.json")
    assert [m["id"] for m in rep["matrix"]] == [r.id for r in REQUIREMENTS]
    assert rep["statement"]["verdict"] == "conformant"
    assert rep["sut"]["certificate_sha256"] and rep["sut"]["announced"]
    assert len(rep["suite"]["features_digest"]) == 64
    gaps = {g["id"] for g in rep["gaps"]}
    assert gaps == {m["id"] for m in rep["matrix"] if m["verdict"] in ("not covered", "not run")}
    assert remote_urls(html) == [] and "<script" not in html


def test_findings_have_one_record_per_check(compliant: Run) -> None:
    doc = compliant.json("findings.json")
    header = doc["header"]
    assert header["command_line"][0] == "run"
    assert header["versions"]["confsec"] and header["versions"]["pytest"]
    assert header["target"]["name"]
    n = sum(len(r["scenarios"]) for r in compliant.json("verdicts.json")["requirements"])
    assert len(doc["findings"]) == n
    for f in doc["findings"]:
        assert set(f) >= {
            "id",
            "requirement",
            "verdict",
            "severity",
            "finding",
            "evidence",
            "timestamp",
        }
        if f["verdict"] == "not applicable" and f["evidence"] is None:
            continue  # skipped before anything was sent: there is nothing to show
        assert (compliant.reports / f["evidence"] / "sip-ladder.txt").is_file(), f


def test_no_secret_of_the_run_in_any_report_file(compliant: Run) -> None:
    secrets = load_inventory(compliant.evidence)
    kinds = {s.kind for s in secrets}
    assert {"password", "private key", "sdes key", "tls secret"} <= kinds, kinds
    secrets += [
        Secret("signing key", line.encode())
        for line in compliant.key.read_text().splitlines()
        if "-----" not in line
    ]
    assert scan(compliant.reports, secrets) == []
    # The scanner sees secrets where they are allowed: the raw evidence bundle.
    assert scan(compliant.evidence / "scenarios", secrets)


def test_flipping_one_byte_in_any_kind_of_report_file_fails_verify(
    compliant: Run, tmp_path: Path
) -> None:
    copy = tmp_path / "reports"
    shutil.copytree(compliant.reports, copy)
    assert verify(copy).code == 0
    files = sorted(p for p in copy.rglob("*") if p.is_file())
    assert len(files) > 10
    # Every file at the top, and one of each kind (directory, suffix) below: a whole run has a
    # thousand files, and each flip re-hashes all of them.
    kinds: dict[tuple[str, str], Path] = {}
    for path in files:
        parts = path.relative_to(copy).parts
        if len(parts) == 1:
            kinds[(parts[0], "")] = path
        else:
            kinds.setdefault((parts[0], path.suffix), path)
    assert len(kinds) > 10
    for path in kinds.values():
        rel = path.relative_to(copy).as_posix()
        data = path.read_bytes()
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(flipped))
        problems = [str(p) for p in manifest.verify(copy)]
        assert problems and any(rel in p for p in problems), (rel, problems)
        path.write_bytes(data)
    victim = copy / "auditor-report.html"
    victim.write_bytes(victim.read_bytes().replace(b"conformant", b"c0nformant", 1))
    checked = verify(copy)
    assert checked.code == 1
    assert "altered: auditor-report.html" in checked.output


def test_evidence_bundle_is_signed_and_separate(compliant: Run) -> None:
    assert verify(compliant.evidence).code == 0
    assert (compliant.evidence / "tls-keylog.txt").is_file()
    assert list(compliant.evidence.glob("scenarios/*/full.pcap"))
    assert list(compliant.evidence.glob("scenarios/*/srtp-keys.json"))
    assert not list(compliant.reports.rglob("*keylog*"))


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="chromium is not installed (.ci/run installs Debian's chromium)",
)
def test_auditor_page_renders_offline_in_headless_chromium(compliant: Run, tmp_path: Path) -> None:
    page = (compliant.reports / "auditor-report.html").as_uri()
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-first-run",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,1400",
    ]
    shot = tmp_path / "matrix.png"
    subprocess.run(
        ["chromium", *flags, f"--screenshot={shot}", page],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a rendered table, not a blank page
    dom = subprocess.run(
        ["chromium", *flags, "--dump-dom", page],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    ).stdout
    assert 'id="matrix"' in dom
    for req in REQUIREMENTS:
        assert f'<tr id="{req.id}">' in dom, req.id


# -- exit codes ----------------------------------------------------------------------------------


def test_defect_is_non_conformant(tmp_path: Path) -> None:
    run = Run(tmp_path, "--defect", "accept-null-cipher", "--req", "R3", "-k", "null")
    assert run.code == 1, run.output[-3000:]
    # The table gives the reason; pytest's tracebacks of the suite's frames stay out.
    assert "offer was accepted" in run.output
    assert "FAILURES" not in run.output and "def " not in run.output, run.output[-3000:]
    fails = [f for f in run.json("findings.json")["findings"] if f["verdict"] == "fail"]
    assert fails and all(f["severity"] == "critical" for f in fails)
    assert "not met" in fails[0]["finding"]
    assert run.json("auditor-report.json")["statement"]["verdict"] == "non-conformant"


def _waiver(tmp_path: Path, expires: str) -> Path:
    path = tmp_path / "waivers.toml"
    path.write_text(
        f'[[waiver]]\nscenario = "{NULL_CIPHER}"\n'
        f'justification = "lab interop until firmware 2.1"\nexpires = {expires}\n'
    )
    return path


def _null_cipher_run(tmp_path: Path, expires: str) -> Run:
    """The null-cipher defect, its two scenarios only, under a waiver expiring on `expires`."""
    waiver = ("--waivers", str(_waiver(tmp_path, expires)))
    return Run(
        tmp_path,
        "--defect",
        "accept-null-cipher",
        "--req",
        "R3",
        "-k",
        "null_cipher_offer",
        *waiver,
    )


def test_waiver_turns_the_failure_into_waived(tmp_path: Path) -> None:
    run = _null_cipher_run(tmp_path, "2099-12-31")
    assert run.code == 0, run.output[-3000:]
    s = run.scenarios()[NULL_CIPHER]
    assert s["verdict"] == "waived" and s["justification"] == "lab interop until firmware 2.1"
    html = (run.reports / "auditor-report.html").read_text()
    assert "lab interop until firmware 2.1" in html
    assert any(f["verdict"] == "waived" for f in run.json("findings.json")["findings"])
    # CI reads junit.xml: the waived cases are skipped with the justification, not failures.
    junit = ET.parse(run.reports / "junit.xml").getroot()
    suite = next(junit.iter("testsuite"))
    cases = [c for c in suite.iter("testcase") if "null_cipher" in c.get("name", "")]
    assert len(cases) == 2 and suite.get("failures") == "0", ET.tostring(suite)[:2000]
    for case in cases:
        assert case.find("failure") is None
        skipped = case.find("skipped")
        assert skipped is not None and skipped.get("type") == "confsec.waived"
        assert "lab interop until firmware 2.1" in skipped.get("message", "")
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert props["confsec.verdict"] == "waived" and props["confsec.requirement"] == "R3"
    # Allure: still failed (the deviation is real) but known, muted and tagged.
    results = [
        json.loads(p.read_text()) for p in (run.reports / "allure-results").glob("*-result.json")
    ]
    waived = [r for r in results if r["name"].startswith(NULL_CIPHER)]  # titles show the offer
    assert len(waived) == 2
    for r in waived:
        assert r["statusDetails"]["muted"] and r["statusDetails"]["known"]
        assert r["statusDetails"]["message"].startswith("Waived until 2099-12-31")
        assert {"name": "tag", "value": "waived"} in r["labels"]


def test_expired_waiver_no_longer_applies(tmp_path: Path) -> None:
    run = _null_cipher_run(tmp_path, "2020-01-01")
    assert run.code == 1, run.output[-3000:]
    assert run.scenarios()[NULL_CIPHER]["verdict"] == "fail"
    assert "expired on 2020-01-01" in run.output
    assert "expired" in (run.reports / "auditor-report.html").read_text()


def test_malformed_waiver_file_is_a_config_error_before_anything_runs(tmp_path: Path) -> None:
    bad = tmp_path / "waivers.toml"
    bad.write_text('[[waiver]]\nscenario = "x"\nexpires = 2099-01-01\n')
    run = Run(tmp_path, "--waivers", str(bad), timeout=60)
    assert run.code == 3, run.output
    assert "waivers.toml" in run.output and "justification" in run.output
    assert not (run.reports / "verdicts.json").exists()
    assert "running against" not in run.output


def test_unknown_defect_is_a_usage_error(tmp_path: Path) -> None:
    run = Run(tmp_path, "--defect", "no-such-defect", timeout=60)
    assert run.code == 3, run.output


def test_a_dtls_defect_without_dtls_mode_is_a_usage_error(tmp_path: Path) -> None:
    """It would switch nothing on: a conformant run with the defect "on"."""
    run = Run(tmp_path, "--defect", "dtls-no-fingerprint-check", timeout=60)
    assert run.code == 3, run.output
    assert "--reference-key-management dtls-srtp" in run.output


def test_unreachable_target_is_an_environment_error(tmp_path: Path) -> None:
    pki = TestPki.create(tmp_path / "pki", "conference.example.test", ("alice",))
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    profile = tmp_path / "target.toml"
    profile.write_text(
        f'[target]\nname = "nobody home"\ndomain = "conference.example.test"\n\n'
        f'[signalling]\nhost = "127.0.0.1"\nport = {port}\n\n'
        f'[conference]\nfactory_uri = "sips:conf-factory@conference.example.test"\n\n'
        f'[tls]\nca_file = "{pki.ca_cert}"\n\n[timeouts]\nconnect = 1\ntransaction = 1\n\n'
        f"[capabilities]\nmutual_tls = true\n\n"
        f'[accounts.alice]\npassword_env = "CONFSEC_TEST_PW"\n'
        f'client_cert = "{pki.client("alice").cert}"\nclient_key = "{pki.client("alice").key}"\n'
    )
    env = dict(os.environ, CONFSEC_TEST_PW="unused-password")
    run = Run(tmp_path, "--target", str(profile), "--req", "R1", timeout=300, env=env)
    assert run.code == 4, run.output[-3000:]
    assert "overall: error" in run.output


def test_confsec_report_rebuilds_and_resigns(compliant: Run, tmp_path: Path) -> None:
    copy = tmp_path / "reports"
    shutil.copytree(compliant.reports, copy)
    (copy / "findings.json").unlink()
    rebuilt = confsec(
        "report",
        "--reports",
        str(copy),
        "--evidence",
        str(tmp_path / "no-bundle"),
        "--signing-key",
        str(compliant.key),
        timeout=120,
    )
    assert rebuilt.code == 0, rebuilt.output
    assert (copy / "findings.json").is_file()
    assert verify(copy).code == 0
