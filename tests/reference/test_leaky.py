"""The key-confinement defects of the reference leave well-formed messages behind.

A leak the suite should find must not also be a malformed message it would refuse to read: the
NOTIFY with the monitoring extension still validates as conference-info (RFC 4575 allows
elements of other namespaces), and the FloorRequestStatus with its status text still parses
strictly (RFC 8855 STATUS-INFO inside OVERALL-REQUEST-STATUS).
"""

from __future__ import annotations

from types import SimpleNamespace

from confsec.codec import bfcp as b
from confsec.codec.conference_info import ConferenceInfo, parse_conference_info
from confsec.codec.sdp import CryptoAttribute, MediaDescription, SessionDescription
from confsec.reference import leaky
from confsec.reference.floor import FloorRequest, _fri
from confsec.reference.model import Conference, Leg

SUITE = "AES_CM_128_HMAC_SHA1_80"


def _answer(unicast: CryptoAttribute, group: CryptoAttribute) -> SessionDescription:
    def line(c: CryptoAttribute, *extra: tuple[str, str | None]) -> MediaDescription:
        attrs = [("crypto", c.to_value()), *extra]
        return MediaDescription.build(
            "audio", port=4000, proto="RTP/SAVP", formats=["0"], attributes=attrs
        )

    return SessionDescription.build(
        "focus", "127.0.0.1", media=[line(unicast), line(group, ("label", "common"))]
    )


class _Focus(SimpleNamespace):
    """What the helpers read of a focus (a class of its own: the registry keeps weak refs)."""

    __hash__ = object.__hash__


def _focus(conf: Conference, answers: dict[str, SessionDescription]) -> _Focus:
    rekey = SimpleNamespace(session=lambda cid, leg_id: (answers[leg_id], []))
    focus = _Focus(
        conferences={conf.conference_id: conf},
        rekey=rekey,
        host="127.0.0.1",
        events=SimpleNamespace(domain="example.com"),
        floor=SimpleNamespace(conference_ids={conf.conference_id: 7}),
    )
    leaky.serve(focus)
    return focus


def _conference() -> tuple[Conference, dict[str, CryptoAttribute], CryptoAttribute]:
    conf = Conference("conf-1", "sips:conf-1@example.com", "alice", True)
    keys = {}
    for user in ("alice", "bob"):
        conf.legs[f"conf-1/{user}/1"] = Leg(f"conf-1/{user}/1", user)
        keys[user] = CryptoAttribute.generate(1, SUITE)
    return conf, keys, CryptoAttribute.generate(2, SUITE)


def test_the_notify_with_member_keys_is_valid_conference_info() -> None:
    conf, keys, group = _conference()
    answers = {f"conf-1/{u}/1": _answer(k, group) for u, k in keys.items()}
    focus = _focus(conf, answers)
    body = ConferenceInfo(conf.uri, 1, "full", users=()).to_bytes()
    leaked = leaky.with_member_keys(focus.events, "conf-1", body)
    parse_conference_info(leaked)  # raises if the extension broke the document
    for k in keys.values():
        assert k.to_value().split()[2].encode() in leaked
    assert group.to_value().split()[2].encode() not in leaked


def test_the_floor_request_status_with_the_group_key_parses() -> None:
    conf, keys, group = _conference()
    focus = _focus(conf, {f"conf-1/{u}/1": _answer(k, group) for u, k in keys.items()})
    request = b.Bfcp(
        primitive=b.Primitive.FLOOR_REQUEST, conference_id=7, transaction_id=3, user_id=2
    )
    fri = _fri(FloorRequest(1, 2, conn=None))  # type: ignore[arg-type]
    status = leaky.floor_request_status(focus.floor, request, fri)
    parsed = b.parse_bfcp(bytes(status))
    assert parsed.primitive == b.Primitive.FLOOR_REQUEST_STATUS and parsed.transaction_id == 3
    assert group.to_value().split()[2].encode() in bytes(status)
