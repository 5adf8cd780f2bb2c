"""The reference authorises who authenticated, never who a request claims (members.py), on real
sockets: SUBSCRIBE to the conference state, joins of a members-only conference (RFC 5366
recipient lists) and first BFCP messages from outside the conference; and, under each defect
switch, the claim it wrongly believes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from confsec.behaviour import claim_checks as cc
from confsec.behaviour import claims as cl
from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.events import EventRun
from confsec.behaviour.floor import SECURE, FloorRun, request_statuses
from confsec.behaviour.floor_binding import FirstMessages
from confsec.behaviour.participant import OfferSpec
from confsec.codec import bfcp as b
from confsec.codec.bfcp import ErrorCode, RequestStatus
from confsec.errors import NonConformance
from confsec.reference.deployment import EmbeddedReference
from confsec.runtime.loop import LoopThread


@contextlib.contextmanager
def _run_with(defect: str, tmp_path: Path) -> Iterator[ConferenceRun]:
    """A conference run against a reference of its own with `defect` switched on."""
    ref = EmbeddedReference.start(tmp_path / "ref", defects=frozenset({defect}))
    loop = LoopThread("test-members-defect")
    conf = ConferenceRun(loop, ref.target, keylog=tmp_path / "keylog.txt")
    try:
        yield conf
    finally:
        conf.close()
        loop.close()
        ref.stop()


def _subscribe_claiming(conf: ConferenceRun, where: str) -> int | None:
    events = EventRun(conf)
    try:
        assert conf.create("alice", OfferSpec()).status == 200
        return cl.subscribe_claiming(events, "mallory", "alice", where).status
    finally:
        events.close()


def _members_only(conf: ConferenceRun) -> None:
    created = cl.create_members_only(conf, "alice", ["alice", "bob"])
    assert created.status == 200, created.reason
    cc.members_only_created(created, "alice")
    assert conf.join("bob", OfferSpec()).status == 200


# -- SUBSCRIBE (R7) ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", cl.CLAIMS)
def test_a_subscriber_claiming_a_participant_is_refused(conf: ConferenceRun, where: str) -> None:
    assert _subscribe_claiming(conf, where) == 403


@pytest.mark.parametrize(
    ("defect", "where"),
    [
        ("subscribe-authorises-from", "From"),
        ("subscribe-authorises-pai", "P-Asserted-Identity"),
        ("subscribe-authorises-display-name", "the From display name"),
    ],
)
def test_each_subscribe_defect_believes_its_claim(defect: str, where: str, tmp_path: Path) -> None:
    with _run_with(defect, tmp_path) as conf:
        assert _subscribe_claiming(conf, where) == 200


# -- members-only conferences (R2) ---------------------------------------------------------------


def test_a_members_only_conference_admits_its_members_alone(
    conf: ConferenceRun, reference: EmbeddedReference
) -> None:
    _members_only(conf)
    conference_id = (conf.conference_uri or "").split(":")[1].split("@")[0]
    members = reference.deployment.focus.conferences[conference_id].members
    assert members == frozenset({"alice", "bob"})
    carol = conf.join("carol", OfferSpec())  # an honest non-member
    assert carol.status == 403
    for where in cl.CLAIMS:
        name = {"From": "mallory", "P-Asserted-Identity": "erin"}.get(where, "frank")
        out = cl.join_claiming(conf, name, "bob", where)
        assert out.status == 403, where
        seen = cc.impostor_refused(out, conf.outcome("bob"), name, "bob", where)
        assert seen.counts["non members refused"] == 1 and len(seen.controls) == 1


def test_a_conference_without_a_list_stays_open(conf: ConferenceRun) -> None:
    assert conf.create("alice", OfferSpec()).status == 200
    assert conf.join("carol", OfferSpec()).status == 200


def test_a_malformed_recipient_list_is_refused(conf: ConferenceRun) -> None:
    def broken(sdp: bytes) -> tuple[bytes, str]:
        return b"--x\r\nContent-Type: application/sdp\r\n\r\n" + sdp, "multipart/mixed;boundary=x"

    assert conf.create("alice", OfferSpec(), wrap=broken).status == 400


@pytest.mark.parametrize(
    ("defect", "where"),
    [
        ("join-authorises-from", "From"),
        ("join-authorises-pai", "P-Asserted-Identity"),
        ("join-authorises-display-name", "the From display name"),
    ],
)
def test_each_join_defect_admits_its_claim(defect: str, where: str, tmp_path: Path) -> None:
    with _run_with(defect, tmp_path) as conf:
        _members_only(conf)
        out = cl.join_claiming(conf, "mallory", "bob", where)
        assert out.status == 200
        with pytest.raises(NonConformance, match="was admitted"):
            cc.impostor_refused(out, conf.outcome("bob"), "mallory", "bob", where)


# -- floor control from outside the conference (R8) ----------------------------------------------


def _outsider(conf: ConferenceRun, message: str):  # type: ignore[no-untyped-def]
    assert conf.create("alice", OfferSpec()).status == 200
    floor = FloorRun(conf)
    assert floor.join("bob", SECURE).answer is not None
    firsts = FirstMessages(floor)
    own = firsts.send("bob", message)
    probe = cl.outsider_first(firsts, "mallory", message, "bob")
    return floor, own, probe


@pytest.mark.parametrize("message", ["Hello", "FloorRequest"])
def test_an_outsider_claiming_a_user_id_is_refused(conf: ConferenceRun, message: str) -> None:
    floor, own, probe = _outsider(conf, message)
    try:
        assert probe.connected and probe.tls and probe.offered is None and probe.grants == 0
        got = probe.answer
        assert got is not None and got.message.primitive == b.Primitive.ERROR
        assert got.message.attr(b.BfcpErrorCode).error_code == ErrorCode.UNAUTHORIZED_OPERATION
        seen = cc.outsider_floor_refused(own, probe)
        assert seen.counts["first messages from outside the conference"] == 1
    finally:
        floor.close()


def test_the_floor_defect_grants_the_outsider(tmp_path: Path) -> None:
    with _run_with("floor-authorises-claimed-user", tmp_path) as conf:
        floor, own, probe = _outsider(conf, "FloorRequest")
        try:
            assert RequestStatus.GRANTED in request_statuses(probe.answer)
            with pytest.raises(NonConformance):
                cc.outsider_floor_refused(own, probe)
        finally:
            floor.close()
