"""findings.json: one record per check, testssl.sh style, for pipelines and ticket systems.

Built from verdicts.json (after waivers), so it lists exactly what the other reports list. Each
record carries a stable id (requirement + hash of the scenario's node id, so a re-run keeps it),
the requirement, verdict, severity, one finding sentence, the evidence path and a timestamp; the
header carries the command line, versions and target.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import sys
from typing import Any

from confsec import __version__

_PACKAGES = ("pytest", "pytest-bdd", "allure-pytest-bdd", "cryptography", "pylibsrtp")


def versions() -> dict[str, str]:
    out = {"confsec": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def finding_id(req_id: str, nodeid: str) -> str:
    return f"CONFSEC-{req_id}-{hashlib.sha256(nodeid.encode()).hexdigest()[:8].upper()}"


def sentence(req: dict[str, Any], s: dict[str, Any]) -> str:
    """One sentence a reader can act on, without opening the evidence."""
    reason = (s.get("reason") or "").splitlines()[0] if s.get("reason") else ""
    reason = reason.split(": ", 1)[-1] if reason else ""
    name, rid, strength = s.get("title") or s["name"], req["id"], req["strength"]
    v = s["verdict"]
    if v == "pass":
        seen = (s.get("observed") or {}).get("summary")
        return f"{rid} ({strength}): '{name}' observed as the requirement asks" + (
            f" ({seen})." if seen else "."
        )
    if v == "fail":
        return f"{rid} ({strength}) not met: '{name}': {reason or 'the check failed'}."
    if v == "waived":
        return (
            f"{rid} ({strength}) not met but waived until {s.get('waiver_expires')}: "
            f"'{name}': {reason}. Justification: {s.get('justification')}"
        )
    if v == "inconclusive":
        return f"{rid}: '{name}' could not be judged: {reason or 'no observation'}."
    if v == "not applicable":
        return f"{rid}: '{name}' does not apply: {reason or 'capability not claimed'}."
    return f"{rid}: '{name}' could not run (suite or environment error): {reason}."


def severity(req: dict[str, Any], verdict: str) -> str:
    return req.get("severity", "minor") if verdict in ("fail", "waived") else "info"


def build_findings(doc: dict[str, Any], assessment: Any, argv: list[str]) -> dict[str, Any]:
    records = []
    for req in doc["requirements"]:
        for s in req["scenarios"]:
            rec = {
                "id": finding_id(req["id"], s["nodeid"]),
                "requirement": req["id"],
                "scenario": s["name"],
                "title": s.get("title", s["name"]),
                "params": s.get("params", {}),
                "observed": s.get("observed", {}),
                "verdict": s["verdict"],
                "severity": severity(req, s["verdict"]),
                "finding": sentence(req, s),
                "evidence": s.get("evidence"),
                "timestamp": s.get("finished", doc.get("started")),
            }
            if s.get("waiver_expired"):
                rec["waiver_expired"] = s["waiver_expired"]
            records.append(rec)
            for n, note in enumerate(s.get("notes", [])):
                # Observations a check reports beside its verdict (e.g. ledger findings that
                # do not fail R4): a record of their own, so that none vanishes.
                records.append(
                    {
                        "id": finding_id(req["id"], f"{s['nodeid']}#note{n}"),
                        "requirement": req["id"],
                        "scenario": s["name"],
                        "title": s.get("title", s["name"]),
                        "params": s.get("params", {}),
                        "verdict": "observation",
                        "severity": note.get("severity", "minor"),
                        "finding": f"{req['id']}: '{s.get('title', s['name'])}': {note['text']}",
                        "evidence": s.get("evidence"),
                        "timestamp": s.get("finished", doc.get("started")),
                    }
                )
    return {
        "header": {
            "tool": "confsec",
            "command_line": argv,
            "invocation": " ".join([sys.argv[0], *argv]),
            "versions": versions(),
            "target": doc.get("target", {}),
            "started": doc.get("started"),
            "duration_s": doc.get("duration_s"),
            "overall": assessment.label,
            "exit_code": assessment.exit_code,
        },
        "findings": records,
    }
