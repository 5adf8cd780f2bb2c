"""The auditor report: one self-contained HTML page and the same content as JSON (a PCTR).

Everything the page needs is inline: CSS in a <style>, charts as inline SVG, no script, no font,
no image fetched; links point only at evidence files beside it (relative paths, so the report
directory can be moved or archived whole). The content is driven by the requirements catalogue
and verdicts.json, never by a list of scenarios, so new features show up without code changes.
"""

from __future__ import annotations

import hashlib
import json
import time
from html import escape
from pathlib import Path
from typing import Any

from confsec.requirements import REQUIREMENTS

COLOURS = {
    "pass": "#2e7d32",
    "fail": "#c62828",
    "waived": "#ef6c00",
    "inconclusive": "#f9a825",
    "error": "#6a1b9a",
    "not applicable": "#90a4ae",
    "not covered": "#cfd8dc",
    "not run": "#e0e0e0",
}


def features_digest(features: Path) -> str:
    """SHA-256 over every feature file (name and bytes): pins which checks the run contained."""
    h = hashlib.sha256()
    for path in sorted(features.rglob("*.feature")):
        h.update(path.relative_to(features).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def _scenario_evidence(reports: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(reports.glob("evidence/*/evidence.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        out[f"evidence/{path.parent.name}"] = doc
    return out


def build_auditor(
    doc: dict[str, Any],
    assessment: Any,
    reports: Path,
    *,
    features: Path,
    argv: list[str],
    parameters: dict[str, Any],
) -> dict[str, Any]:
    """The auditor report as data (the JSON file; the HTML renders exactly this)."""
    ev = _scenario_evidence(reports)
    sut: dict[str, Any] = {
        "name": doc.get("target", {}).get("name", "unknown"),
        "defects": doc.get("target", {}).get("defects", []),
        "addresses": set(),
        "announced": set(),
        "certificate_sha256": set(),
        "tls": set(),
    }
    capabilities: dict[str, Any] = {}
    timeouts: dict[str, Any] = {}
    for e in ev.values():
        s = e.get("sut", {})
        sut["name"] = s.get("name", sut["name"])
        sut["addresses"].add(s.get("address", ""))
        for k in ("announced", "certificate_sha256", "tls"):
            sut[k].update(s.get(k, []))
        capabilities = s.get("capabilities", capabilities)
        timeouts = s.get("timeouts", timeouts)
    for k in ("addresses", "announced", "certificate_sha256", "tls"):
        sut[k] = sorted(x for x in sut[k] if x)
    metrics = [
        {"evidence": path, "nodeid": e.get("nodeid"), **{"metrics": e.get("metrics", {})}}
        for path, e in ev.items()
    ]
    matrix = []
    gaps = []
    for r in doc["requirements"]:
        row = {k: r.get(k) for k in ("id", "strength", "severity", "clause", "title", "verdict")}
        row["scenarios"] = [
            {
                k: s.get(k)
                for k in (
                    "name",
                    "title",
                    "params",
                    "observed",
                    "notes",
                    "verdict",
                    "reason",
                    "evidence",
                    "justification",
                    "waiver_expires",
                    "waiver_expired",
                    "duration_s",
                )
                if s.get(k) not in (None, "", {})
            }
            for s in r["scenarios"]
        ]
        matrix.append(row)
        if r["verdict"] == "not covered":
            gaps.append({"id": r["id"], "strength": r["strength"], "gap": "no scenario"})
        elif r["verdict"] == "not run":
            gaps.append({"id": r["id"], "strength": r["strength"], "gap": "not selected"})
        elif r["scenarios"] and all(s["verdict"] == "not applicable" for s in r["scenarios"]):
            gaps.append({"id": r["id"], "strength": r["strength"], "gap": "capability not claimed"})
    return {
        "title": "confsec conformance test report (TR 33.829 clause 5.1)",
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "suite": {
            **doc.get("suite", {}),
            "features_digest": features_digest(features),
            "requirements_catalogue": [r.id for r in REQUIREMENTS],
        },
        "run": {
            "command_line": argv,
            "started": doc.get("started"),
            "duration_s": doc.get("duration_s"),
        },
        "sut": sut,
        "capabilities": capabilities,
        "parameters": {**parameters, "timeouts": timeouts},
        "statement": {"verdict": assessment.label, "text": assessment.statement},
        "summary": doc.get("summary", {}),
        "matrix": matrix,
        "gaps": gaps,
        "waivers": doc.get("waivers", []),
        "metrics": metrics,
    }


# -- HTML -----------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{border:1px solid #ddd;padding:4px 6px;
vertical-align:top;text-align:left}th{background:#f5f5f5}.v{color:#fff;border-radius:3px;
padding:1px 6px;white-space:nowrap;font-size:12px}.stmt{font-size:16px;padding:10px 14px;
border-left:6px solid #999;background:#fafafa}code{font-size:12px;word-break:break-all}
.small{font-size:12px;color:#555}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px}
dt{font-weight:600}dd{margin:0}
"""


def _badge(verdict: str) -> str:
    colour = COLOURS.get(verdict, "#777")
    fg = "#222" if verdict in ("not covered", "not run", "inconclusive") else "#fff"
    return f'<span class="v" style="background:{colour};color:{fg}">{escape(verdict)}</span>'


def _verdict_chart(matrix: list[dict[str, Any]]) -> str:
    """Stacked bars: scenarios per verdict for each requirement (a gap shows as a grey bar)."""
    rows, bar_h, left, width = len(matrix), 18, 44, 420
    most = max([len(r["scenarios"]) for r in matrix] + [1])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{left + width + 140}" '
        f'height="{rows * (bar_h + 4) + 10}" aria-label="verdicts by requirement">'
    ]
    for i, r in enumerate(matrix):
        y = 4 + i * (bar_h + 4)
        parts.append(f'<text x="0" y="{y + 13}" font-size="12">{escape(r["id"])}</text>')
        if not r["scenarios"]:
            parts.append(
                f'<rect x="{left}" y="{y}" width="{width / most:.1f}" height="{bar_h}" '
                f'fill="{COLOURS.get(r["verdict"], "#ccc")}"><title>{escape(r["verdict"])}</title>'
                "</rect>"
            )
            parts.append(
                f'<text x="{left + width / most + 6:.1f}" y="{y + 13}" font-size="11">'
                f"{escape(r['verdict'])}</text>"
            )
            continue
        x = float(left)
        counts: dict[str, int] = {}
        for s in r["scenarios"]:
            counts[s["verdict"]] = counts.get(s["verdict"], 0) + 1
        for verdict, n in sorted(counts.items()):
            w = width * n / most
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                f'fill="{COLOURS.get(verdict, "#777")}">'
                f"<title>{escape(verdict)}: {n}</title></rect>"
            )
            x += w
        label = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 13}" font-size="11">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _metric_chart(metrics: list[dict[str, Any]]) -> str:
    """Bars of the latency-like numbers the scenarios measured (rekey latency, call setup)."""
    names: dict[str, list[tuple[str, float]]] = {}
    for m in metrics:
        for k, v in m["metrics"].items():
            if "latency" in k or k.endswith("_ms") or "_ms_" in k:
                label = (m.get("nodeid") or m["evidence"]).split("::")[-1][5:60]
                names.setdefault(k, []).append((label, float(v)))
    if not names:
        return '<p class="small">No latency was measured in this run.</p>'
    # Rekey latency first when a scenario measured it, else the call setup time.
    key = sorted(names, key=lambda k: (("rekey" not in k), ("max" not in k), k))[0]
    values = sorted(names[key], key=lambda t: -t[1])[:25]
    top = max(v for _, v in values) or 1.0
    bar_h, left, width = 14, 330, 360
    parts = [
        f"<p class=small>{escape(key)} per scenario (ms)</p>",
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{left + width + 80}" '
        f'height="{len(values) * (bar_h + 3) + 6}" aria-label="{escape(key)}">',
    ]
    for i, (label, v) in enumerate(values):
        y = 3 + i * (bar_h + 3)
        w = width * v / top
        parts.append(f'<text x="0" y="{y + 11}" font-size="11">{escape(label)}</text>')
        parts.append(
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#1565c0"></rect>'
        )
        parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 11}" font-size="11">{v:.2f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _dl(items: dict[str, Any]) -> str:
    out = ["<dl>"]
    for k, v in items.items():
        if isinstance(v, list | tuple):
            v = ", ".join(str(x) for x in v) or "-"
        elif isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items()) or "-"
        out.append(f"<dt>{escape(str(k))}</dt><dd><code>{escape(str(v))}</code></dd>")
    out.append("</dl>")
    return "".join(out)


def render_html(rep: dict[str, Any]) -> str:
    sut = rep["sut"]
    st = rep["statement"]
    rows = []
    for r in rep["matrix"]:
        scen = []
        for s in r["scenarios"]:
            title = s.get("title") or s["name"]
            params = s.get("params") or {}
            shown = title != s["name"]  # an outline title that shows its example's values
            ptxt = (
                " (" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")"
                if params and not shown
                else ""
            )
            links = ""
            if s.get("evidence"):
                e = escape(s["evidence"])
                links = (
                    f' <a href="{e}/sip-ladder.txt">ladder</a>'
                    f' <a href="{e}/key-ledger.csv">keys</a>'
                    f' <a href="{e}/slice.pcap">pcap</a> <a href="{e}/evidence.json">numbers</a>'
                )
            note = ""
            if s.get("justification"):
                note = (
                    f'<br><span class="small">waived until {escape(s.get("waiver_expires", ""))}:'
                    f" {escape(s['justification'])}</span>"
                )
            if s.get("waiver_expired"):
                note += f'<br><span class="small">{escape(s["waiver_expired"])}</span>'
            reason = ""
            seen = (s.get("observed") or {}).get("summary")
            if seen and s["verdict"] == "pass":
                reason = f'<br><span class="small">observed: {escape(seen[:300])}</span>'
            for n in s.get("notes") or []:
                reason += (
                    f'<br><span class="small">observation ({escape(n.get("severity", ""))}): '
                    f"{escape(n.get('text', '')[:300])}</span>"
                )
            if s.get("reason") and s["verdict"] not in ("pass",):
                reason = (
                    f'<br><span class="small">{escape(s["reason"].splitlines()[0][:300])}</span>'
                )
            scen.append(
                f"<li>{_badge(s['verdict'])} {escape(title)}{escape(ptxt)}{links}{reason}"
                f"{note}</li>"
            )
        scen_html = f"<ul>{''.join(scen)}</ul>" if scen else '<span class="small">none</span>'
        rows.append(
            f'<tr id="{escape(r["id"])}"><td><b>{escape(r["id"])}</b></td>'
            f"<td>{escape(r['strength'])}<br><span class=small>{escape(r['severity'] or '')}"
            f"</span></td><td>{escape(r['title'])}<br><span class=small>TR 33.829 clause "
            f"{escape(r['clause'] or '')}</span></td><td>{_badge(r['verdict'])}</td>"
            f"<td>{scen_html}</td></tr>"
        )
    gaps = "".join(
        f"<li><b>{escape(g['id'])}</b> ({escape(g['strength'])}): {escape(g['gap'])}</li>"
        for g in rep["gaps"]
    )
    waivers = "".join(
        f"<li>{escape(w.get('requirement') or '')} {escape(w.get('scenario') or '')}: "
        f"{escape(w['justification'])} (expires {escape(w['expires'])}, "
        f"<b>{escape(w['status'])}</b>)</li>"
        for w in rep["waivers"]
    )
    colour = {"conformant": "#2e7d32", "non-conformant": "#c62828"}.get(st["verdict"], "#f9a825")
    suite = rep["suite"]
    run = rep["run"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{escape(rep["title"])}</title><style>{_CSS}</style></head>
<body>
<h1>{escape(rep["title"])}</h1>
<p class="small">generated {escape(rep["generated"])} by confsec {
        escape(str(suite.get("version")))
    }</p>
<div class="stmt" style="border-color:{colour}"><b>Overall: {escape(st["verdict"])}.</b>
{escape(st["text"])}</div>
<h2>Traceability matrix</h2>
<table id="matrix"><thead><tr><th>req</th><th>strength</th><th>requirement</th><th>verdict</th>
<th>scenarios, verdicts and evidence</th></tr></thead><tbody>
{"".join(rows)}
</tbody></table>
<h2>Verdicts by requirement</h2>
{_verdict_chart(rep["matrix"])}
<h2>Measured numbers</h2>
{_metric_chart(rep["metrics"])}
<h2>Coverage gaps</h2>
<ul>{gaps or "<li>none</li>"}</ul>
<h2>Waivers</h2>
<ul>{waivers or "<li>none</li>"}</ul>
<h2>System under test</h2>
{
        _dl(
            {
                "name": sut["name"],
                "addresses": sut["addresses"],
                "announced versions": sut["announced"],
                "certificate SHA-256": sut["certificate_sha256"],
                "TLS": sut["tls"],
                "defect switches": sut["defects"],
            }
        )
    }
<h2>Capability statement and parameters</h2>
{_dl(rep["capabilities"] or {"capabilities": "not recorded"})}
{_dl(rep["parameters"])}
<h2>Suite and run</h2>
{
        _dl(
            {
                "suite": f"{suite.get('name')} {suite.get('version')}",
                "features digest (SHA-256)": suite["features_digest"],
                "command line": " ".join(run["command_line"]),
                "started": run["started"],
                "duration (s)": run["duration_s"],
            }
        )
    }
</body></html>
"""


def write_auditor(rep: dict[str, Any], reports: Path) -> tuple[Path, Path]:
    html_path, json_path = reports / "auditor-report.html", reports / "auditor-report.json"
    json_path.write_text(json.dumps(rep, indent=1, default=str) + "\n")
    html_path.write_text(render_html(rep))
    return html_path, json_path
