"""The dial-out judgements on hand-built calls (no server): what a participant the service
calls sees of its caller and its offer, and how R1 and R2 are judged from it.

A call from a party whose certificate names another domain, or that presented none, is a
finding; an offer with SRTP as an option (RTP/AVP with a=crypto) is a finding; no call at all is
inconclusive, never a pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from confsec.behaviour import dialout_checks as dc
from confsec.behaviour.answering import IncomingCall, offer_problems, service_problem
from confsec.codec.sdp import CryptoAttribute, MediaDescription, SessionDescription
from confsec.codec.sip import Headers, Request
from confsec.net.flow import Flow
from confsec.pki import TestPki
from confsec.report.verdicts import Verdict
from tests.behaviour.judging import judge, passes_on_evidence

DOMAIN = "conference.example.test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki.create(tmp_path_factory.mktemp("pki"), DOMAIN, ["bob"])


def der(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)


def flow(cert: bytes | None, transport: str = "tls") -> Flow:
    return Flow(transport, ("127.0.0.1", 40000), ("127.0.0.1", 5061), cert)


def offer(proto: str = "RTP/SAVP", keyed: bool = True) -> SessionDescription:
    media = []
    for kind, pt in (("audio", "0"), ("video", "96")):
        attrs = [("crypto", CryptoAttribute.generate(1, "AES_CM_128_HMAC_SHA1_80").to_value())]
        media.append(
            MediaDescription.build(
                kind, port=50000, proto=proto, formats=[pt], attributes=attrs if keyed else []
            )
        )
    return SessionDescription.build("focus", "127.0.0.1", media=media)


def call(f: Flow, sdp: SessionDescription | None, status: int = 200) -> IncomingCall:
    request = Request("INVITE", "sips:bob@127.0.0.1:40000", Headers([("Call-ID", "x")]), b"")
    problem = service_problem(f, DOMAIN)
    return IncomingCall("bob", 0.0, f, request, sdp, None, problem, status, "OK")


def test_the_service_is_authenticated_by_a_certificate_for_its_domain(pki: TestPki) -> None:
    assert service_problem(flow(der(pki.server("service").cert)), DOMAIN) is None
    other = service_problem(flow(der(pki.server("other-domain").cert)), DOMAIN)
    assert other is not None and "not for conference.example.test" in other
    assert "no certificate" in (service_problem(flow(None), DOMAIN) or "")
    assert "not TLS" in (service_problem(flow(None, "udp"), DOMAIN) or "")
    # A participant's certificate (a SIP URI of a user) is not the service's.
    assert service_problem(flow(der(pki.client("bob").cert)), DOMAIN) is not None


def test_srtp_as_an_option_is_not_srtp_only() -> None:
    assert offer_problems(offer()) == []
    problems = offer_problems(offer("RTP/AVP"))
    assert problems == [
        "audio offered as RTP/AVP with a=crypto (SRTP as an option)",
        "video offered as RTP/AVP with a=crypto (SRTP as an option)",
    ]
    assert "no usable a=crypto" in offer_problems(offer(keyed=False))[0]


def test_r1_and_r2_are_judged_on_the_calls_that_reached_the_participants(pki: TestPki) -> None:
    good = flow(der(pki.server("service").cert))
    assert passes_on_evidence(dc.offers_srtp_only, {"bob": [call(good, offer())]})
    verdict, why = judge(dc.offers_srtp_only, {"bob": [call(good, offer("RTP/AVP"))]})
    assert verdict == Verdict.FAIL and "SRTP as an option" in why
    assert passes_on_evidence(dc.service_authenticated, {"bob": [call(good, offer())]}, DOMAIN)
    wrong = flow(der(pki.server("other-domain").cert))
    verdict, why = judge(dc.service_authenticated, {"bob": [call(wrong, offer(), 403)]}, DOMAIN)
    assert verdict == Verdict.FAIL and "did not authenticate itself" in why


def test_no_call_is_inconclusive_never_a_pass() -> None:
    for check in (dc.offers_srtp_only, dc.service_authenticated):
        args = ({"bob": []},) if check is dc.offers_srtp_only else ({"bob": []}, DOMAIN)
        verdict, why = judge(check, *args)
        assert verdict == Verdict.INCONCLUSIVE and "none of bob" in why, why
