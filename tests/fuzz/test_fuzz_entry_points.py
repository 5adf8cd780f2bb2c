"""The reference stays up and keeps serving the others while its entry points are fuzzed.

`confsec.fuzz` is the driver: a live conference (alice and bob exchanging tones under SRTP, bob
holding a BFCP connection) and mallory, an admitted participant, who sends mutations of valid
SIP requests, SDP offers in authenticated INVITEs, BFCP messages on its own floor control
connection and SRTP datagrams to the mixer's ports. Here it runs a few dozen inputs per entry
point (the long run is `python benchmarks/fuzz_reference.py --inputs 20000`).

The driver is only worth something if it notices a reference that falls over, so the same run
against the crash defect switches must come out dirty: each is caught by the entry point whose
input sets it off.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.floor import FloorRun, request_statuses
from confsec.behaviour.participant import OfferSpec
from confsec.codec.bfcp import BfcpParseError, Primitive, RequestStatus, parse_bfcp
from confsec.fuzz.fuzzer import ENTRY_POINTS, ReferenceFuzzer
from confsec.fuzz.report import FuzzReport
from confsec.reference.defects import parse_defects
from confsec.runtime.loop import LoopThread

INPUTS = 40
"""Per entry point: the whole module stays around half a minute on a loaded two-core machine."""
SEED = 7
HANG_S = 5.0
"""A valid probe unanswered this long is a hang: generous, so a loaded machine is not one."""


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceFuzzer]:
    """One fuzz run over every entry point, a service check after each batch."""
    workdir = tmp_path_factory.mktemp("fuzz-reference")
    fuzzer = ReferenceFuzzer(workdir, seed=SEED, hang_s=HANG_S, out=workdir / "inputs")
    try:
        fuzzer.start()
        fuzzer.run(INPUTS, INPUTS)
        yield fuzzer
    finally:
        fuzzer.close()


def test_every_entry_point_received_its_inputs_and_answered_some(fuzzed: ReferenceFuzzer) -> None:
    entries = fuzzed.report.entries
    assert {e: entries[e].inputs for e in ENTRY_POINTS} == dict.fromkeys(ENTRY_POINTS, INPUTS)
    for name in ("sip", "sdp", "bfcp"):
        answered = sum(n for cls, n in entries[name].responses.items() if cls != "none")
        assert answered > 0, f"{name}: nothing reached the server ({entries[name].responses})"
    # SRTP: the forged datagrams were refused, the ones under mallory's own key got through to
    # the mixer's RTP parsing and mixing.
    assert entries["srtp"].responses["dropped"] > 0
    assert entries["srtp"].responses["taken"] > 0


def test_no_input_left_the_server_hung_or_down(fuzzed: ReferenceFuzzer) -> None:
    stuck = {
        e.name: (e.hangs, e.down, e.refused, [str(p) for p in e.saved])
        for e in fuzzed.report.entries.values()
        if e.hangs or e.down or e.refused
    }
    assert stuck == {}


def test_the_others_were_served_after_every_batch(fuzzed: ReferenceFuzzer) -> None:
    """Alice and bob heard each other with every packet authenticating, bob's floor control
    answered, and carol could join, after the setup and after each entry point's batch."""
    report = fuzzed.report
    assert report.service_checks == 1 + len(ENTRY_POINTS)
    assert report.service_failures == []


def test_the_reference_logged_no_traceback_and_no_error(fuzzed: ReferenceFuzzer) -> None:
    report = fuzzed.report
    assert (report.exceptions, report.errors) == ([], [])


def test_a_malformed_crypto_attribute_is_refused_without_a_traceback(
    fuzzed: ReferenceFuzzer,
) -> None:
    """Regression: a=crypto is parsed lazily, and the first fuzz run made the focus's INVITE
    handler raise on it (answered 500, a traceback in the log) instead of refusing the offer."""
    seed = fuzzed.sdp_seeds[0]
    assert b"inline:" in seed
    bad = seed.replace(b"inline:", b"inline:!!", 1)
    response = fuzzed.offer(bad)
    assert 400 <= response.status < 500, f"{response.status} {response.reason}"
    assert fuzzed.report.exceptions == []


def test_a_floor_holder_that_disconnects_releases_the_floor(
    fuzzed: ReferenceFuzzer, tmp_path: Path
) -> None:
    """Regression: the fuzz run left the floor granted to a connection that had closed, and
    every later request from anyone stayed Pending. The next request in the queue is granted."""
    loop = LoopThread("test-floor-holder")
    conf = ConferenceRun(loop, fuzzed.target, keylog=tmp_path / "keylog.txt")
    floor = FloorRun(conf)
    try:
        assert conf.create("dave", OfferSpec()).status == 200
        for name in ("erin", "grace"):
            assert floor.join(name).answer is not None
            assert floor.connect(name).client is not None
        assert RequestStatus.GRANTED in request_statuses(floor.request_floor("erin"))
        # grace waits behind erin
        assert RequestStatus.PENDING in request_statuses(floor.request_floor("grace"))
        grace = floor.session("grace").client
        assert grace is not None
        since = len(grace.received)
        loop.run(floor.session("erin").client.close(), 5)  # type: ignore[union-attr]
        status = Primitive.FLOOR_REQUEST_STATUS
        got = loop.run(grace.wait_for(lambda m: m.primitive == status, 5, since), 10)
        granted = RequestStatus.GRANTED in request_statuses(got)
        assert granted, "the floor stayed with erin's connection"
    finally:
        floor.close()
        conf.close()
        loop.close()


def test_a_request_whose_connection_closes_before_the_answer_is_not_a_handler_failure(
    fuzzed: ReferenceFuzzer,
) -> None:
    """Regression: a valid request followed, in the same write, by bytes that break the framing
    makes the focus close the connection (and end the request's transaction) before its
    handler answers; the handler's answer then raised and the UA logged a failed handler."""
    responses, closed = fuzzed.send_sip(fuzzed.options_request() + b"NOT SIP\r\n\r\n")
    assert closed and responses == []
    assert fuzzed.report.exceptions == []


def test_a_request_with_a_second_unparsable_to_gets_a_400(fuzzed: ReferenceFuzzer) -> None:
    """Regression: the UA checked only the first To, and the focus's answer, which echoes every
    To (RFC 3261 8.2.6.2), raised on the second one (a traceback, no answer)."""
    head, body = fuzzed.options_request().split(b"\r\n\r\n", 1)
    responses, _closed = fuzzed.send_sip(head + b"\r\nTo: <sips:broken\r\n\r\n" + body)
    assert [r.status for r in responses] == [400]
    assert fuzzed.report.exceptions == []


def test_a_nul_in_an_echoed_header_is_refused_without_a_traceback(
    fuzzed: ReferenceFuzzer,
) -> None:
    """Regression: the parser takes a NUL inside Call-ID, the response builder refuses to echo
    it, and the answer raised (in the request handler, or in the transport's receive path)."""
    options = fuzzed.options_request().replace(b"Call-ID: ", b"Call-ID: \x00", 1)
    fuzzed.send_sip(options)
    assert fuzzed.report.exceptions == []


def test_a_grouped_attribute_holding_junk_is_a_parse_error() -> None:
    """Regression (found by the BFCP entry point of the fuzz run): a FloorQuery whose payload is
    two REQUESTED-BY-INFORMATION headers of length 7 made the decoder raise AttributeError, so
    the floor server logged a traceback and answered Error 14 instead of Error 13."""
    data = bytes.fromhex("2007000220070001200700012007000120070001")
    with pytest.raises(BfcpParseError):
        parse_bfcp(data)


def _run_with(defect: str, entry: str, workdir: Path) -> FuzzReport:
    fuzzer = ReferenceFuzzer(workdir, defects=parse_defects([defect]), seed=SEED, hang_s=HANG_S)
    try:
        fuzzer.start()  # the baseline check passes: the defect waits for malformed input
        return fuzzer.run(INPUTS, INPUTS, (entry,))
    finally:
        fuzzer.close()


@pytest.mark.parametrize(
    ("defect", "entry"),
    [
        ("bfcp-crash-on-malformed", "bfcp"),
        ("focus-crash-on-malformed-sip", "sip"),
        ("mixer-crash-on-truncated", "srtp"),
    ],
)
def test_the_driver_notices_a_reference_that_falls_over(
    defect: str, entry: str, tmp_path: Path
) -> None:
    report = _run_with(defect, entry, tmp_path)
    assert not report.clean
    assert report.service_failures, report.table()
    if entry == "bfcp":
        # The floor server closes its listener: the BFCP liveness probe itself sees it gone,
        # and the batch stops there instead of counting refusals.
        assert report.entries["bfcp"].down == 1
        assert report.entries["bfcp"].inputs < INPUTS
        assert any("bob's BFCP" in f for f in report.service_failures)
