"""The claimed-identity checks (confsec.behaviour.claim_checks) judged alone: a refusal passes
only beside the claimed member's own admission, an admission of the impostor fails, and a
refusal for some other cause is inconclusive."""

from __future__ import annotations

import pytest

from confsec.behaviour import claim_checks as cc
from confsec.behaviour import claims as cl
from confsec.behaviour.floor_binding import FirstMessage
from confsec.behaviour.outcomes import CallOutcome
from confsec.codec.sdp import CryptoAttribute, MediaDescription, SessionDescription
from confsec.report.verdicts import Verdict
from confsec.target.model import Account, Target
from tests.behaviour.judging import judge

URI = "sips:conf-1@conference.example.test"


def _call(name: str, status: int | None, reason: str = "") -> CallOutcome:
    out = CallOutcome(name, URI, status=status, reason=reason)
    if status == 200:
        crypto = CryptoAttribute.generate(1, "AES_CM_128_HMAC_SHA1_80")
        m = MediaDescription.build(
            "audio",
            port=40000,
            proto="RTP/SAVP",
            formats=["0"],
            attributes=[("crypto", crypto.to_value())],
        )
        out.answer = SessionDescription.build("focus", "127.0.0.1", media=[m])
    return out


@pytest.mark.parametrize(
    ("impostor", "member", "verdict"),
    [
        (403, 200, Verdict.PASS),
        (603, 200, Verdict.PASS),
        (200, 200, Verdict.FAIL),
        (403, 403, Verdict.INCONCLUSIVE),  # refuses everyone: the refusal shows nothing
        (488, 200, Verdict.INCONCLUSIVE),  # refused, but not for who it is
        (401, 200, Verdict.INCONCLUSIVE),
        (None, 200, Verdict.INCONCLUSIVE),  # no answer
    ],
)
def test_impostor_refused(impostor: int | None, member: int, verdict: Verdict) -> None:
    got, why = judge(
        cc.impostor_refused,
        _call("mallory", impostor),
        _call("bob", member),
        "mallory",
        "bob",
        "From",
    )
    assert got is verdict, why
    if verdict is Verdict.PASS:
        assert "non members refused" in why and "bob" in why


def _first(sender: str, claimed: str, **kw: object) -> FirstMessage:
    fields: dict[str, object] = {"offered": None, "presented": "AA", **kw}
    return FirstMessage(sender=sender, primitive="Hello", claimed=claimed, **fields)  # type: ignore[arg-type]


def test_an_outsider_probe_needs_the_claimed_member_as_its_control() -> None:
    probe = _first("mallory", "bob", connected=True, tls=True, result="closed", started=2.0)
    got, why = judge(cc.outsider_floor_refused, None, probe)
    assert got is Verdict.INCONCLUSIVE and "control" in why
    carol = _first("carol", "carol", connected=True, tls=True, result="answered", started=1.0)
    got, why = judge(cc.outsider_floor_refused, carol, probe)
    assert got is Verdict.INCONCLUSIVE and "bob's own first Hello" in why
    insider = _first("mallory", "bob", offered="AA")
    got, _ = judge(cc.outsider_floor_refused, carol, insider)
    assert got is Verdict.INCONCLUSIVE


def test_each_claim_shows_the_member_in_one_place(tmp_path) -> None:  # type: ignore[no-untyped-def]
    accounts = {n: Account(n, n, "pw", n.capitalize()) for n in ("mallory", "bob")}
    target = Target(
        "t", "example.test", "127.0.0.1", 5061, "sips:f@example.test", tmp_path, accounts
    )
    from_ = cl.claim(target, "mallory", "bob", "From")
    assert from_.shown is not None and from_.shown.username == "bob" and not from_.headers
    pai = cl.claim(target, "mallory", "bob", "P-Asserted-Identity")
    assert pai.shown is None and pai.headers == (
        ("P-Asserted-Identity", '"Bob" <sips:bob@example.test>'),
    )
    shown = cl.claim(target, "mallory", "bob", "the From display name")
    assert shown.shown is not None and (shown.shown.username, shown.shown.display_name) == (
        "mallory",
        "Bob",
    )
    with pytest.raises(ValueError):
        cl.claim(target, "mallory", "bob", "Contact")
