"""`confsec run -n 2` (pytest-xdist) gives the verdicts of a run in one process.

Verdicts are judged on the worker and carried in the test reports, every socket binds port 0,
and Allure results are per-test files: so two workers must give the same verdict for every
scenario, one Allure result and one JUnit case per scenario, and no clash. A defect switch is on
so that the comparison covers failures as well as passes.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.cli_runner import CliResult, confsec_run

# A sample of R3 (media: the defect fails the replay scenario; the others pass) and of R8
# (BFCP over TLS, its own connections): enough to mix passes and fails across two workers,
# without running the two requirements whole twice on a 2-core CI.
ARGS = (
    "--defect",
    "mixer-accepts-replay",
    "--req",
    "R3",
    "--req",
    "R8",
    "-k",
    "srtp_packet or protected_media or floor_is_granted or plain_tcpbfcp or fresh_connection",
)


def verdicts(run: CliResult) -> dict[tuple[str, str], str]:
    return {
        (r["id"], s["nodeid"]): s["verdict"]
        for r in run.requirements().values()
        for s in r["scenarios"]
    }


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_workers_give_the_verdicts_of_one(tmp_path: Path) -> None:
    one = confsec_run(tmp_path / "one", *ARGS, timeout=300)
    two = confsec_run(tmp_path / "two", "-n", "2", *ARGS, timeout=300)
    assert one.code == two.code == 1, (one.output[-2000:], two.output[-2000:])
    got = verdicts(two)
    assert got == verdicts(one)
    assert {"pass", "fail"} <= set(got.values()), got
    assert len(got) >= 8, got
    nodeids = {nodeid for _, nodeid in got}

    assert two.reports is not None
    results = [
        json.loads(p.read_text()) for p in (two.reports / "allure-results").glob("*-result.json")
    ]
    assert len(results) == len(nodeids), "one Allure result per scenario, none lost or doubled"
    threads = {lb["value"] for r in results for lb in r["labels"] if lb["name"] == "thread"}
    assert len({t.split("-")[0] for t in threads}) == 2, threads  # two worker processes
    cases = list(ET.parse(two.reports / "junit.xml").getroot().iter("testcase"))
    assert len(cases) == len(nodeids)
