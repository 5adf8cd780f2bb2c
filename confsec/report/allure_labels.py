"""Allure, done for an auditor: requirement labels and links, severity, evidence attachments.

allure-pytest-bdd reads `allure_label` / `allure_link` marks when a scenario starts, so the
labels are marks applied from `pytest_bdd_apply_tag` (the catalogue gives strength and clause);
evidence is attached with `allure.attach` from the `conf` fixture's teardown, while Allure's test
case is still open. Without `--alluredir` both are harmless no-ops.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from confsec.evidence import scenario_slug
from confsec.evidence.scenario import collect
from confsec.requirements import BY_ID

# TR 33.829 in the 3GPP archive: the clause is named in the link text.
SPEC_URL = "https://www.3gpp.org/ftp/Specs/archive/33_series/33.829/"

# Allure severities; InSpec-style impact from the requirement's strength.
SEVERITY = {"shall": "critical", "should": "normal", "observation": "minor"}
SEVERITY_ORDER = ("blocker", "critical", "normal", "minor", "trivial")


def severity_of(req_id: str) -> str:
    req = BY_ID.get(req_id)
    return SEVERITY.get(req.strength, "minor") if req else "minor"


def requirement_marks(req_id: str) -> list[pytest.MarkDecorator]:
    """The Allure marks for a scenario tagged `@req:<req_id>`."""
    req = BY_ID.get(req_id)
    label = pytest.mark.allure_label
    marks = [
        label(req_id, label_type="requirement"),
        label(severity_of(req_id), label_type="severity"),
        label("TR 33.829 clause 5.1", label_type="parentSuite"),
        label(f"{req_id}: {req.title}" if req else req_id, label_type="suite"),
        label("confsec", label_type="epic"),
    ]
    if req is not None:
        marks.append(
            pytest.mark.allure_link(
                SPEC_URL, name=f"TR 33.829 clause {req.clause} ({req_id})", link_type="tms"
            )
        )
    return marks


def register_markers(config: pytest.Config) -> None:
    """Under --strict-markers the Allure marks must be known even when Allure is not loaded."""
    config.addinivalue_line("markers", "allure_label: Allure label (confsec requirement tags)")
    config.addinivalue_line("markers", "allure_link: Allure link (confsec requirement clause)")


def record_evidence(
    node: pytest.Item, run: Any, reports: Path, bundle: Path, media: list[Any] | None = None
) -> Path:
    """Write one scenario's evidence (redacted in reports/, raw in the bundle), attach it."""
    publish_protocol_windows(node, run)
    slug = scenario_slug(node.nodeid)
    ev = collect(run, media)
    ev.metrics.update(measured(getattr(node, "user_properties", [])))
    report_dir = reports / "evidence" / slug
    meta = {"nodeid": node.nodeid, "slug": slug}
    ev.write(report_dir, bundle / "scenarios" / slug, meta)
    _attach(ev, report_dir, getattr(node, "_confsec_title", None))
    return report_dir


PROTOCOL_WINDOW = "protocol_window_s"


def publish_protocol_windows(node: pytest.Item, run: Any) -> None:
    """Put the scenario's protocol windows (`ConferenceRun.protocol_windows`) on the item, as
    `("protocol_window_s", {"total": ..., "media": ...})`: they then reach the measured numbers,
    JUnit properties and, through the teardown report (which xdist carries), verdicts.json."""
    windows = {k: round(v, 3) for k, v in getattr(run, "protocol_windows", {}).items()}
    node.user_properties.append(
        (PROTOCOL_WINDOW, {"total": round(sum(windows.values(), 0.0), 3), **windows})
    )


def measured(props: list[tuple[str, Any]]) -> dict[str, float]:
    """Numbers steps published on the test item (`("rekey_latency", {"max_ms": 12.0})`), so
    that a step can add a measurement without knowing about reports."""
    out: dict[str, float] = {}
    for name, value in props:
        items = value.items() if isinstance(value, dict) else [("", value)]
        for key, v in items:
            if isinstance(v, int | float) and not isinstance(v, bool):
                out[f"{name}.{key}" if key else str(name)] = float(v)
    return out


def _attach(ev: Any, report_dir: Path, title: str | None = None) -> None:
    try:
        import allure
        from allure_commons.types import AttachmentType
    except ImportError:  # pragma: no cover - allure-pytest-bdd is a dependency
        return
    if title:  # an outline's title with its example's values, as in every other report
        allure.dynamic.title(title)
    allure.attach(ev.ladder_text(), "SIP ladder (redacted)", AttachmentType.TEXT)
    allure.attach(ev.ledger_csv(), "key-stream ledger", AttachmentType.CSV)
    allure.attach.file(str(report_dir / "slice.pcap"), "pcap slice (redacted)", AttachmentType.PCAP)
    allure.attach(json.dumps(ev.metrics, indent=1), "measured numbers", AttachmentType.JSON)
