"""After the scenarios: waivers, findings, auditor report, Allure HTML, signed manifests.

`confsec run` calls `finalize()` once pytest has written verdicts.json, junit.xml and the Allure
results; `confsec report` calls it again on an existing directory. Everything here reads files
and writes files (no network, no pytest), so its cost is a few hundred milliseconds plus Allure's
own generation time, which is measured and printed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confsec.report import manifest
from confsec.report.allure_html import build_allure_html, find_allure, remote_urls
from confsec.report.allure_waivers import mark_waived
from confsec.report.auditor import build_auditor, write_auditor
from confsec.report.conformance import Assessment, assess
from confsec.report.findings import build_findings
from confsec.report.junit import annotate_junit
from confsec.report.waivers import Waiver, apply_waivers

# Files a run writes into reports/ (cleared before a run so that nothing stale is signed).
REPORT_OUTPUTS = (
    "verdicts.json",
    "findings.json",
    "junit.xml",
    "auditor-report.html",
    "auditor-report.json",
    "signing-key.pub.pem",
    manifest.MANIFEST,
    manifest.SIGNATURE,
)
REPORT_DIRS = ("evidence", "allure-report")
# What a run writes into the evidence bundle.
BUNDLE_OUTPUTS = (
    "tls-keylog.txt",
    "reference-tls-keylog.txt",
    manifest.MANIFEST,
    manifest.SIGNATURE,
)
BUNDLE_DIRS = ("scenarios", "secrets")


def default_signing_key() -> Path:
    """A per-user Ed25519 key, created on first use: stable, so an auditor can pin it."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "confsec" / "signing-key.pem"


def clean(reports: Path, evidence: Path) -> None:
    """Remove what an earlier run left in the two directories (only our own files)."""
    for d, files, dirs in (
        (reports, REPORT_OUTPUTS, REPORT_DIRS),
        (evidence, BUNDLE_OUTPUTS, BUNDLE_DIRS),
    ):
        for name in files:
            (d / name).unlink(missing_ok=True)
        for name in dirs:
            shutil.rmtree(d / name, ignore_errors=True)


@dataclass
class Outcome:
    assessment: Assessment
    doc: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def finalize(
    reports: Path,
    evidence: Path,
    *,
    root: Path,
    argv: list[str],
    waivers: list[Waiver],
    fail_on: str,
    signing_key: Path,
    parameters: dict[str, Any],
    allure_html: bool = True,
    today: dt.date | None = None,
) -> Outcome:
    t0 = time.perf_counter()
    vfile = reports / "verdicts.json"
    doc = json.loads(vfile.read_text())
    apply_waivers(doc, waivers, today or dt.date.today())
    vfile.write_text(json.dumps(doc, indent=2) + "\n")
    if (reports / "junit.xml").is_file():
        annotate_junit(reports / "junit.xml", doc)
    mark_waived(reports / "allure-results", doc)
    result = assess(doc, fail_on)
    out = Outcome(result, doc)
    findings = build_findings(doc, result, argv)
    (reports / "findings.json").write_text(json.dumps(findings, indent=1) + "\n")
    rep = build_auditor(
        doc, result, reports, features=root / "features", argv=argv, parameters=parameters
    )
    write_auditor(rep, reports)
    out.timings["findings+auditor"] = time.perf_counter() - t0
    for w in doc.get("waivers", []):
        if w["status"] == "expired":
            out.notes.append(
                f"waiver for {w.get('scenario') or w.get('requirement')} expired on "
                f"{w['expires']}: it no longer applies"
            )
    if allure_html:
        t1 = time.perf_counter()
        allure = find_allure(root)
        results = reports / "allure-results"
        if allure is None:
            out.notes.append(
                "Allure HTML not written: npm's allure 3 is not installed (run .ci/run, or "
                "`npm install --prefix .tools/allure allure@3`, or set CONFSEC_ALLURE)"
            )
        elif not results.is_dir():
            out.notes.append("Allure HTML not written: no allure-results/")
        else:
            try:
                index = build_allure_html(allure, results, reports / "allure-report")
                leftovers = remote_urls(index.read_text())
                if leftovers:
                    out.notes.append(f"Allure HTML still references the network: {leftovers[:3]}")
            except (RuntimeError, OSError, TimeoutError) as exc:
                out.notes.append(f"Allure HTML not written: {exc}")
        out.timings["allure-html"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    key = manifest.load_or_create_key(signing_key)
    (reports / "signing-key.pub.pem").write_bytes(manifest.public_pem(key))
    manifest.sign(reports, key)
    if evidence.is_dir():
        manifest.sign(evidence, key)
    out.timings["sign"] = time.perf_counter() - t2
    return out
