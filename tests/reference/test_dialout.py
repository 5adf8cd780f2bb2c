"""The reference's registrar, REFER and dial-out on real sockets (reference/registrar.py,
reference/dialout.py): who may register and refer, what the focus offers when it calls, whom it
admits, and how it reports progress."""

from __future__ import annotations

import dataclasses

from confsec.behaviour.answering import offer_problems
from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.dialout import DialOutRun
from confsec.behaviour.participant import OfferSpec
from confsec.net.startup import start_listening_ua, start_ua


def _started(conf: ConferenceRun) -> DialOutRun:
    run = DialOutRun(conf)
    assert conf.create("alice", OfferSpec()).status == 200
    return run


def test_a_member_refers_a_user_and_the_focus_calls_it_with_srtp_only(conf: ConferenceRun):
    run = _started(conf)
    try:
        run.callable("bob")
        call = run.add("alice", "bob")
        out = run.await_progress(run.refers[-1])
    finally:
        run.close()
    assert call.admitted and call.service_problem is None
    assert call.offer is not None and not offer_problems(call.offer)
    assert [m.proto for m in call.offer.media] == ["RTP/SAVP", "RTP/SAVP"]
    # The focus presented the service certificate as a TLS client.
    peer = call.flow.peer_identity
    assert peer is not None and conf.target.domain in peer.dns_names
    statuses = [n.status for n in out.progress()]
    assert statuses[0] == 100 and statuses[-1] == 200
    assert all(n.flow.secure for n in out.progress())
    bob = conf.participants["bob"]
    assert set(bob.send_crypto) == {"audio", "video"}
    assert bob.dialog is not None and not bob.dialog.is_terminated


def test_a_refer_with_method_bye_removes_the_participant(conf: ConferenceRun):
    run = _started(conf)
    try:
        run.callable("bob")
        run.add("alice", "bob")
        run.remove("alice", "bob")
        # The final sipfrag follows the BYE's answer: await it, do not race it.
        final = run.await_progress(run.refers[-1]).final()
    finally:
        run.close()
    bob = conf.participants["bob"]
    assert bob.dialog is not None and bob.dialog.is_terminated
    assert final is not None and final.status == 200


def test_a_non_member_and_an_unauthenticated_party_are_refused(conf: ConferenceRun):
    run = _started(conf)
    try:
        run.callable("carol")
        assert run.refer("mallory", "carol").status == 403
        assert run.refer("alice", "carol", credentials="none").status == 401
        assert run.listen("carol", 0.5) == []
    finally:
        run.close()


def test_the_registrar_binds_only_the_users_own_address_of_record(conf: ConferenceRun):
    t = conf.target
    bob = t.account("bob")

    async def register(to_user: str) -> int:
        ua = await start_ua(
            t, conf.keylog, shown=bob, cert=bob, credentials=(bob.username, bob.password)
        )
        try:
            response = await ua.request(
                "REGISTER", f"sips:{t.domain}", dest=t.dest, to=f"<sips:{to_user}@{t.domain}>"
            )
            return response.status
        finally:
            await ua.close()

    assert conf.runtime.run(register("bob"), 10, "register") == 200
    assert conf.runtime.run(register("carol"), 10, "register") == 403


def test_a_callee_whose_certificate_names_another_user_is_not_admitted(conf: ConferenceRun):
    """Mutual authentication in the other direction: the focus checks that the certificate
    of the user it called names that user (RFC 5922 7.1), and hangs up otherwise."""
    run = _started(conf)
    t = conf.target
    bob, carol = t.account("bob"), t.account("carol")
    impostor = dataclasses.replace(bob, client_cert=carol.client_cert, client_key=carol.client_key)
    answered: list[int] = []

    async def handler(req) -> None:  # type: ignore[no-untyped-def]
        if req.method == "INVITE":
            answered.append(200)
            await req.respond(200, body=req.request.body, content_type="application/sdp")
        else:
            await req.respond(200)

    async def listen() -> None:
        ua = await start_listening_ua(t, conf.keylog, impostor, handler)
        conf.keep_ua(ua)
        response = await ua.request(
            "REGISTER", f"sips:{t.domain}", dest=t.dest, to=f"<{bob.aor(t.domain)}>"
        )
        assert response.status == 200

    try:
        conf.runtime.run(listen(), 10, "listening as bob with carol's certificate")
        out = run.await_progress(run.refer("alice", "bob"))
    finally:
        run.close()
    final = out.final()
    assert answered == [200]
    assert final is not None and final.status == 403
