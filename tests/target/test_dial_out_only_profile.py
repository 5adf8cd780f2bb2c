"""A target that claims only dial-out creation (a phone that merges its calls, a bridge filled
from its console) gets a verdict for every requirement that applies, not "not covered".

The reference is served in a process of its own and its profile rewritten to claim nothing but
`dial-out`: no factory URI, no REFER, no event package, floor control or group keys. Its
operator console (`confsec reference operator`, reference/operator.py) is the adapter that
starts the conference and has it call each participant, as a vendor's adapter script would.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli_runner import confsec_run
from tests.target.test_reference_profile import served

CLAIMED_OFF = ("event_package", "floor_control", "group_keys", "restricted_membership")


def dial_out_only(profile: Path) -> Path:
    text = profile.read_text()
    text = re.sub(r"(?m)^factory_uri = .*\n", "", text)
    text = re.sub(r"(?m)^creation_modes = .*$", 'creation_modes = ["dial-out"]', text)
    for name in CLAIMED_OFF:
        text = re.sub(rf"(?m)^{name} = .*$", f"{name} = false", text)
    text = re.sub(r"(?m)^reach = .*$", 'reach = "adapter"', text)
    out = profile.with_name("dial-out-only.toml")
    out.write_text(text)
    return out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_dial_out_only_profile_gets_a_verdict_for_every_requirement(tmp_path: Path) -> None:
    for profile, env in served(tmp_path):
        result = confsec_run(
            tmp_path / "run",
            "--target",
            str(dial_out_only(profile)),
            "--no-allure-html",
            timeout=540,
            env=env,
        )
    doc = result.verdicts()
    by_req = {r["id"]: r for r in doc["requirements"]}
    verdicts = {r: v["verdict"] for r, v in by_req.items()}
    # Every requirement that applies is judged by the dial-out scenarios, and passes.
    for req in ("R1", "R2", "R3", "R4", "R6"):
        assert verdicts[req] == "pass", (req, by_req[req], result.output[-3000:])
    assert "not covered" not in {verdicts[f"R{n}"] for n in range(1, 9)}, verdicts
    assert {verdicts[r] for r in ("R5", "R7", "R8")} == {"not applicable"}, verdicts
    dial_out = {
        s["name"]: s["verdict"]
        for r in doc["requirements"]
        for s in r["scenarios"]
        if "call" in s["name"] or "REFER" in s["name"] or "removes" in s["name"]
    }
    passed = {n for n, v in dial_out.items() if v == "pass"}
    assert "A conference that calls its participants is secure for everyone" in passed, dial_out
    assert "A participant the service removes is gone and the others are rekeyed" in passed
    # REFER is not claimed: its scenarios do not apply.
    assert all(v == "not applicable" for n, v in dial_out.items() if "REFER" in n), dial_out
    assert result.code == 0, result.output[-3000:]
