"""The search for media keys outside their holders' SDP answers, on hand-made traces (no server).

A key is found however it is written (raw, hex, base64 alone or as the SDES key||salt, inside a
base64 blob); its place in its holder's answer over TLS is the positive control, not a leak; the
same key anywhere else (another party, a provisional response, a NOTIFY, BFCP, plain transport)
is a leak of its kind (R3 unicast, R5 group, O4 event package); and no verdict names a key.
"""

from __future__ import annotations

import base64
import itertools

import pytest

from confsec.behaviour import key_leaks as kl
from confsec.codec.bfcp import Bfcp, BfcpStatusInfo, Primitive
from confsec.codec.sdp import CryptoAttribute, MediaDescription, SessionDescription
from confsec.codec.sip import Headers, Request, Response
from confsec.evidence.secrets import key_spellings
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.net.bfcp import Received
from confsec.net.flow import Flow
from confsec.net.trace import TraceEntry
from confsec.report.verdicts import Verdict
from tests.behaviour.judging import judge

PASS, FAIL, INCONCLUSIVE = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE
SUITE = "AES_CM_128_HMAC_SHA1_80"
TLS = Flow("tls", ("127.0.0.1", 40000), ("127.0.0.1", 5061))
PLAIN = Flow("udp", ("127.0.0.1", 40000), ("127.0.0.1", 5060))
_seq = itertools.count(1)


def crypto() -> CryptoAttribute:
    return CryptoAttribute.generate(1, SUITE)


class Conference:
    """A ledger as the participants would have filled it: alice and bob each receive from the
    focus with a key of their own and the group key, and send with a key of their own."""

    def __init__(self) -> None:
        self.ledger = KeyStreamLedger()
        self.recv = {n: crypto() for n in ("alice", "bob")}
        self.send = {n: crypto() for n in ("alice", "bob")}
        self.group = crypto()
        for n in ("alice", "bob"):
            r, s, g = self.recv[n], self.send[n], self.group
            self.ledger.register(StreamId(n, "focus", "audio", "recv"), SUITE, r.key, r.salt)
            self.ledger.register(StreamId(n, "focus", "audio", "send"), SUITE, s.key, s.salt)
            self.ledger.register(
                StreamId(n, "focus", "audio", "recv", "common"), SUITE, g.key, g.salt
            )

    def answer(self, name: str) -> bytes:
        """The focus's SDP answer to `name`: its unicast key and the group key."""
        lines = [
            MediaDescription.build(
                "audio", port=4000, proto="RTP/SAVP", formats=["0"], attributes=[("crypto", c)]
            )
            for c in (self.recv[name].to_value(), self.group.to_value())
        ]
        return SessionDescription.build("focus", "127.0.0.1", media=lines).to_bytes()

    def legitimate(self) -> list[kl.Sighting]:
        """Each participant's 200 OK to its INVITE, over TLS, with its answer."""
        out = []
        for n in ("alice", "bob"):
            out += kl.trace_sightings(n, [received(response(200, "INVITE", self.answer(n)))])
        return out

    def keys(self) -> list[kl.HeldKey]:
        return kl.held_keys(self.ledger)


def headers(method: str) -> Headers:
    return Headers(
        [
            ("Via", "SIP/2.0/TLS 127.0.0.1:40000;branch=z9hG4bK-1"),
            ("From", "<sips:alice@example.com>;tag=a"),
            ("To", "<sips:conf@example.com>;tag=b"),
            ("Call-ID", f"call-{next(_seq)}"),
            ("CSeq", f"{next(_seq)} {method}"),
        ]
    )


def response(status: int, method: str, body: bytes = b"") -> Response:
    reasons = {200: "OK", 183: "Session Progress", 488: "Not Acceptable Here"}
    return Response(status, reasons.get(status, "X"), headers(method), body)


def request(method: str, body: bytes = b"") -> Request:
    return Request(method, "sips:alice@127.0.0.1:40000", headers(method), body)


def received(msg: Request | Response | bytes, flow: Flow = TLS) -> TraceEntry:
    return TraceEntry("received", flow, msg, 0.0)


def search(c: Conference, *extra: kl.Sighting) -> kl.LeakScan:
    return kl.scan([*c.legitimate(), *extra], c.keys())


def never_named(c: Conference, text: str) -> None:
    """No spelling of any key of the conference is in `text` (a verdict's reason)."""
    data = text.encode()
    for k in c.keys():
        for _, spelling in k.spellings:
            assert spelling not in data


# -- the legitimate place ------------------------------------------------------------------------


def test_keys_in_their_holders_answers_are_the_control_not_a_leak() -> None:
    c = Conference()
    result = search(c)
    assert result.findings and result.leaks == []
    for check in (kl.unicast_keys_confined, kl.group_keys_confined):
        verdict, why = judge(check, result)
        assert verdict == PASS, why
        assert "0 leaks" in why and "2 places" in why
    never_named(c, judge(kl.unicast_keys_confined, result)[1])


def test_a_rekey_reinvite_of_the_focus_is_a_legitimate_place() -> None:
    c = Conference()
    fresh = crypto()
    c.ledger.register(
        StreamId("alice", "focus", "audio", "recv", "epoch-2"), SUITE, fresh.key, fresh.salt
    )
    offer = SessionDescription.build(
        "focus",
        "127.0.0.1",
        media=[
            MediaDescription.build(
                "audio",
                port=4002,
                proto="RTP/SAVP",
                formats=["0"],
                attributes=[("crypto", fresh.to_value())],
            )
        ],
    ).to_bytes()
    reinvite = kl.trace_sightings("alice", [received(request("INVITE", offer))])
    assert judge(kl.unicast_keys_confined, search(c, *reinvite))[0] == PASS


def test_without_the_holders_answer_the_search_is_inconclusive() -> None:
    c = Conference()
    result = kl.scan(c.legitimate()[:1], c.keys())  # bob's 200 OK is missing
    verdict, why = judge(kl.unicast_keys_confined, result)
    assert verdict == INCONCLUSIVE and "bob" in why
    never_named(c, why)


def test_no_key_issued_is_inconclusive() -> None:
    verdict, why = judge(kl.unicast_keys_confined, kl.scan([], []))
    assert verdict == INCONCLUSIVE and "issued no unicast" in why


# -- leaks, however the key is written ------------------------------------------------------------


def spelled(c: Conference, how: str) -> bytes:
    k = c.recv["alice"]
    raw = {
        "sdes": b"a=crypto:1 " + SUITE.encode() + b" inline:" + base64.b64encode(k.key + k.salt),
        "hex": b"key=" + k.key.hex().encode(),
        "HEX": b"key=" + k.key.hex().upper().encode(),
        "salt hex": b"salt=" + k.salt.hex().encode(),
        "base64 key": b"k=" + base64.b64encode(k.key),
        "base64 salt": b"s=" + base64.b64encode(k.salt),
        "raw key": b"\x00\x01" + k.key + b"\xff",
        "raw salt": b"\x00" + k.salt,
        "in a base64 blob": b"blob=" + base64.b64encode(b"xy" + k.key + k.salt),
    }
    return raw[how]


@pytest.mark.parametrize(
    "how",
    [
        "sdes",
        "hex",
        "HEX",
        "salt hex",
        "base64 key",
        "base64 salt",
        "raw key",
        "raw salt",
        "in a base64 blob",
    ],
)
def test_a_key_to_someone_else_is_found_however_it_is_written(how: str) -> None:
    c = Conference()
    leak = kl.trace_sightings("bob", [received(response(183, "INVITE", spelled(c, how)))])
    result = search(c, *leak)
    verdict, why = judge(kl.unicast_keys_confined, result)
    assert verdict == FAIL, why
    assert "183 Session Progress (INVITE) to bob" in why and "alice <- focus audio" in why
    never_named(c, why)


def test_the_answer_itself_elsewhere_is_a_leak() -> None:
    c = Conference()
    cases = {
        "a 200 OK to someone who does not hold it": (
            "bob",
            TLS,
            response(200, "INVITE", c.answer("alice")),
        ),
        "its holder's answer in the clear": (
            "alice",
            PLAIN,
            response(200, "INVITE", c.answer("alice")),
        ),
        "an error response to its holder": (
            "alice",
            TLS,
            response(488, "INVITE", c.answer("alice")),
        ),
        "a BYE to its holder": ("alice", TLS, request("BYE", c.answer("alice"))),
    }
    for what, (who, flow, msg) in cases.items():
        result = search(c, *kl.trace_sightings(who, [received(msg, flow)]))
        assert judge(kl.unicast_keys_confined, result)[0] == FAIL, what
        # bob holds the group key too: only alice's unicast key is out of place there.
        group = PASS if who == "bob" else FAIL
        assert judge(kl.group_keys_confined, result)[0] == group, what


def test_a_participants_own_key_returned_to_it_is_no_leak_but_to_another_is() -> None:
    c = Conference()
    echo = c.send["alice"].to_value().encode()
    to_alice = kl.trace_sightings("alice", [received(response(488, "INVITE", echo))])
    assert judge(kl.unicast_keys_confined, search(c, *to_alice))[0] == PASS
    to_bob = kl.trace_sightings("bob", [received(response(488, "INVITE", echo))])
    verdict, why = judge(kl.unicast_keys_confined, search(c, *to_bob))
    assert verdict == FAIL and "alice -> focus audio" in why


def test_the_group_key_in_bfcp_is_an_r5_leak_only() -> None:
    c = Conference()
    status = Bfcp(
        primitive=Primitive.FLOOR_REQUEST_STATUS,
        conference_id=1,
        transaction_id=1,
        user_id=1,
        attributes=[BfcpStatusInfo(text=b"floor 1: a=crypto:1 " + c.group.to_value().encode())],
    )
    bfcp = kl.bfcp_sightings("bob", [Received(bytes(status), status)], secure=True)
    result = search(c, *bfcp)
    assert judge(kl.unicast_keys_confined, result)[0] == PASS
    verdict, why = judge(kl.group_keys_confined, result)
    assert verdict == FAIL and "BFCP FloorRequestStatus to bob" in why
    never_named(c, why)


def test_a_key_in_a_notify_fails_o4_and_a_keyless_notify_passes() -> None:
    c = Conference()
    body = b"<conference-info><m:srtp-key>inline:" + base64.b64encode(
        c.recv["bob"].key + c.recv["bob"].salt
    )
    keyed = kl.trace_sightings("bob", [received(request("NOTIFY", body + b"</m:srtp-key>"))])
    verdict, why = judge(kl.event_package_keyless, search(c, *keyed))
    assert verdict == FAIL and "NOTIFY" in why
    never_named(c, why)
    clean = kl.trace_sightings("bob", [received(request("NOTIFY", b"<conference-info/>"))])
    verdict, why = judge(kl.event_package_keyless, search(c, *clean))
    assert verdict == PASS and "1 NOTIFY messages searched" in why


def test_o4_without_a_notify_body_is_inconclusive() -> None:
    c = Conference()
    bare = kl.trace_sightings("bob", [received(request("NOTIFY"))])
    assert judge(kl.event_package_keyless, search(c, *bare))[0] == INCONCLUSIVE


def test_anything_a_plain_listener_answers_counts_as_plain() -> None:
    c = Conference()
    answer = kl.trace_sightings(
        "probe",
        [received(response(200, "OPTIONS", c.answer("alice")), PLAIN)],
        kind="plain listener",
    )
    result = search(c, *answer)
    assert result.scanned["plain listener"] == 1
    assert judge(kl.unicast_keys_confined, result)[0] == FAIL


def test_keys_are_never_in_reprs() -> None:
    c = Conference()
    text = repr(c.keys()) + repr(search(c).findings)
    never_named(c, text)


def test_the_spellings_are_the_report_scanners() -> None:
    c = Conference()
    k = c.recv["alice"]
    (held,) = [h for h in c.keys() if "alice <- focus audio" in h.streams]
    assert held.spellings == tuple(key_spellings(k.key, k.salt))
    assert held.issued and not held.group and held.holders == {"alice"}
