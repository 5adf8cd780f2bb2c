"""`ConferenceRun`'s public face against the embedded reference, on loopback: every behaviour
module joins, leaves and vanishes through it, so what each option does is pinned here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.floor import floor_offer_line
from confsec.behaviour.participant import OfferSpec
from confsec.codec.sip import Request
from confsec.reference.deployment import EmbeddedReference
from confsec.runtime.loop import LoopThread


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedReference]:
    ref = EmbeddedReference.start(tmp_path_factory.mktemp("ref-conference"))
    yield ref
    ref.stop()


@pytest.fixture
def conf(reference: EmbeddedReference, tmp_path: Path) -> Iterator[ConferenceRun]:
    loop = LoopThread("test-conference")
    run = ConferenceRun(loop, reference.target, keylog=tmp_path / "keylog.txt")
    run.create("alice", OfferSpec())
    assert run.conference_uri is not None
    yield run
    run.close()
    loop.close()


def _sent_methods(conf: ConferenceRun, name: str) -> list[str]:
    trace = conf.participant(name).ua.trace
    return [
        e.message.method for e in trace if e.direction == "sent" and isinstance(e.message, Request)
    ]


def test_join_keeps_an_admitted_participant_keyed_and_in_its_dialog(conf: ConferenceRun) -> None:
    out = conf.join("bob", OfferSpec())
    bob = conf.participant("bob")
    assert out.admitted and out.answer is not None
    assert conf.outcome("bob") is out and conf.last_outcome is out
    assert bob.dialog is out.dialog and bob.dialog is not None
    assert bob.legs["audio"].sender is not None and bob.legs["audio"].remote is not None
    assert [r.status for r in out.responses][-1] == 200


def test_extra_media_follows_the_participants_own_lines(conf: ConferenceRun) -> None:
    bfcp = floor_offer_line(conf.target.account("bob").client_cert)
    out = conf.join("bob", OfferSpec(), extra_media=[bfcp])
    assert out.admitted and out.answer is not None
    assert [m.media for m in out.answer.media] == ["audio", "application"]


def test_a_probe_is_not_kept(conf: ConferenceRun) -> None:
    """keep=False: the outcome and its dialog are the caller's; no media, no rekey answering."""
    out = conf.runtime.run(conf.join_async("bob", OfferSpec(), keep=False), 30)
    bob = conf.participant("bob")
    assert out.admitted and out.dialog is not None
    assert bob.legs == {} and bob.dialog is None
    conf.runtime.run(out.dialog.bye(timeout=5), 10)


def test_a_crafted_offer_is_sent_verbatim(conf: ConferenceRun) -> None:
    body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio\r\n"
    out = conf.runtime.run(conf.join_async("bob", body), 30)
    assert out.status is not None and 400 <= out.status < 500
    assert conf.participant("bob").legs == {}
    assert conf.outcome("bob") is out


def test_leave_says_bye_and_closes_the_legs(conf: ConferenceRun) -> None:
    conf.join("bob", OfferSpec())
    legs = list(conf.participant("bob").legs.values())
    conf.leave("bob")
    bob = conf.participant("bob")
    assert bob.dialog is not None and bob.dialog.is_terminated
    assert "BYE" in _sent_methods(conf, "bob")
    assert all(leg.closed for leg in legs)


def test_vanish_closes_everything_without_a_bye(conf: ConferenceRun) -> None:
    conf.join("bob", OfferSpec())
    legs = list(conf.participant("bob").legs.values())
    conf.vanish("bob")
    assert "BYE" not in _sent_methods(conf, "bob")
    assert all(leg.closed for leg in legs)
    assert all(not leg.sending for leg in legs)


def test_leave_with_watch_keeps_the_legs_open_and_sending(conf: ConferenceRun) -> None:
    """watch=True (confsec.behaviour.leaving): the BYE goes out, the legs stay open and keep
    sending under the old keys, and the leaver counts as departed."""
    conf.join("bob", OfferSpec())
    bob = conf.participant("bob")
    bob.start_media()
    legs = list(bob.legs.values())
    conf.leave("bob", watch=True)
    assert bob.dialog is not None and bob.dialog.is_terminated
    assert all(not leg.closed and leg.sending for leg in legs)
    assert conf.departed == {"bob"}
    bob.stop_media()
