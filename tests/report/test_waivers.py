"""Waivers: validated before anything runs, applied only to fails, and only until they expire."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from confsec.errors import ConfigError
from confsec.report.conformance import assess
from confsec.report.waivers import apply_waivers, load_waivers

GOOD = """\
[[waiver]]
scenario = "A null cipher offer is refused"
justification = "lab interop, ticket 42"
expires = 2030-01-31
"""


def doc(verdict: str = "fail") -> dict:
    return {
        "requirements": [
            {
                "id": "R3",
                "strength": "shall",
                "severity": "critical",
                "verdict": verdict,
                "scenarios": [
                    {"name": "A null cipher offer is refused", "nodeid": "n1", "verdict": verdict},
                    {"name": "Another", "nodeid": "n2", "verdict": "pass"},
                ],
            }
        ]
    }


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "waivers.toml"
    p.write_text(text)
    return p


def test_active_waiver_turns_fail_into_waived(tmp_path: Path) -> None:
    waivers = load_waivers(write(tmp_path, GOOD))
    d = apply_waivers(doc(), waivers, dt.date(2030, 1, 31))
    s = d["requirements"][0]["scenarios"][0]
    assert s["verdict"] == "waived"
    assert s["justification"] == "lab interop, ticket 42"
    assert d["requirements"][0]["verdict"] == "waived"
    assert assess(d).exit_code == 0
    assert "waived" in assess(d).statement


def test_expired_waiver_no_longer_applies_and_says_so(tmp_path: Path) -> None:
    waivers = load_waivers(write(tmp_path, GOOD))
    d = apply_waivers(doc(), waivers, dt.date(2030, 2, 1))
    s = d["requirements"][0]["scenarios"][0]
    assert s["verdict"] == "fail"
    assert "expired on 2030-01-31" in s["waiver_expired"]
    assert d["waivers"][0]["status"] == "expired"
    assert assess(d).exit_code == 1


def test_waiver_never_hides_an_error(tmp_path: Path) -> None:
    waivers = load_waivers(write(tmp_path, GOOD.replace("scenario = ", "requirement = 'R3'\n#")))
    d = apply_waivers(doc("error"), waivers, dt.date(2029, 1, 1))
    assert d["requirements"][0]["scenarios"][0]["verdict"] == "error"


@pytest.mark.parametrize(
    "text, message",
    [
        ("[[waiver]]\nscenario = 'x'\nexpires = 2030-01-01\n", "justification"),
        ("[[waiver]]\njustification = 'j'\nexpires = 2030-01-01\n", "requirement` or `scenario"),
        ("[[waiver]]\nrequirement = 'R9'\njustification = 'j'\nexpires = 2030-01-01\n", "R9"),
        ("[[waiver]]\nscenario = 'x'\njustification = 'j'\nexpires = 'soon'\n", "TOML date"),
        ("[[waiver]]\nscenario = 'x'\njustification = 'j'\nexpires = 2030-01-01\nx = 1\n", "x"),
        ("[[waiver]\n", "not valid TOML"),
        ("waivers = 1\n", "unknown top-level"),
    ],
)
def test_malformed_waiver_file_is_a_config_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"waivers\.toml") as info:
        load_waivers(write(tmp_path, text))
    assert message in str(info.value)


def test_fail_on_threshold() -> None:
    d = doc()
    d["requirements"][0].update(strength="should", severity="normal")
    assert assess(d, "minor").exit_code == 1
    assert assess(d, "normal").exit_code == 1
    relaxed = assess(d, "critical")
    assert relaxed.exit_code == 0
    assert relaxed.below_threshold == ("R3",)
    assert "below the --fail-on critical threshold" in relaxed.statement
