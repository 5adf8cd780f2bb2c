"""The floor-control checks (R8, O5), judged on what `FloorRun` observed, never on the network.

Each check returns the `Evidence` it judged, since a pass must rest on an observation, and each
negative check carries its positive control: a refusal counts only where the same server, on
the same kind of connection, granted an honest request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from confsec.behaviour.floor import (
    BASELINE_CONTROL,
    SECURE,
    FloorSession,
    FuzzProbe,
    describe_answer,
    no_connection,
    request_statuses,
)
from confsec.behaviour.floor_binding import FirstMessage
from confsec.codec import bfcp as b
from confsec.errors import Inconclusive, NonConformance, TargetUnreachable
from confsec.net.bfcp import Received
from confsec.observed import Evidence

# One rule for a server the suite could not observe: no observation is inconclusive; a server
# that could not be reached at all (connection refused or timed out) is an error of the
# environment (`TargetUnreachable`, see `no_connection`), never a fail, except where the suite
# saw it serve first and then saw it gone (`still_serving`): that it stopped is the observation.


def _admitted(s: FloorSession) -> None:
    out = s.outcome
    if out.error is not None:
        raise Inconclusive(f"{s.name}'s INVITE: {out.error}")
    if out.status is None or not 200 <= out.status < 300:
        raise Inconclusive(f"{s.name} was not admitted ({out.status} {out.reason})")


def answer_secure(s: FloorSession) -> Evidence:
    """R8 / RFC 8856: the accepted BFCP stream is TCP/TLS/BFCP with everything it needs."""
    _admitted(s)
    a = s.answer
    if a is None or a.port == 0:
        raise Inconclusive(f"the answer to {s.name} declines floor control: nothing to judge")
    if a.proto.upper() != SECURE:
        raise NonConformance(f"the answer carries BFCP over {a.proto}, not {SECURE}")
    if a.fingerprint is None:
        raise NonConformance("the BFCP answer has no a=fingerprint to authenticate the server")
    needed = ("confid", "userid", "floorid", "setup", "floorctrl")
    missing = [n for n in needed if not a.attributes.get(n)]
    if missing:
        raise NonConformance(f"the BFCP answer lacks a={', a='.join(missing)}")
    if a.attributes["setup"] not in ("passive", "actpass"):
        raise NonConformance(f"a=setup:{a.attributes['setup']} answers our a=setup:active")
    return Evidence.of(bfcp_answers_judged=1, bfcp_answer_attributes_present=len(needed) + 1)


def plain_refused(s: FloorSession, controls: Sequence[FloorSession] = ()) -> Evidence:
    """R8: a TCP/BFCP offer gets no floor control in the clear (488, or the m-line at port 0).

    Accepting it is a finding on its own. The refusal counts only beside the positive control:
    another participant's TCP/TLS/BFCP offer to the same conference was accepted, so the focus
    does grant floor control and refused this offer for being plain.
    """
    out = s.outcome
    if out.error is not None:
        raise Inconclusive(f"{s.name}'s INVITE: {out.error}")
    if out.status is None:
        raise Inconclusive(f"{s.name}'s INVITE got no final answer: nothing to judge")
    if not 200 <= out.status < 300:
        if out.status not in (488, 606):
            raise Inconclusive(f"refused with {out.status} {out.reason}: may have another cause")
        seen = Evidence.of(plain_bfcp_offers_refused=1)
    else:
        a = s.answer
        if a is not None and a.port != 0:
            raise NonConformance(
                f"the focus accepted BFCP over {a.proto} in the clear (port {a.port})"
            )
        seen = Evidence.of(plain_bfcp_streams_declined=1)
    why = "no TCP/TLS/BFCP offer was made in this scenario"
    for c in controls:
        try:
            answer_secure(c)
        except (NonConformance, Inconclusive) as exc:
            why = f"{c.name}: {exc}"
            continue
        return seen + Evidence.of(
            f"{c.name}'s TCP/TLS/BFCP offer to the same conference was accepted"
        )
    raise Inconclusive(
        f"the positive control failed ({why}): refusing {s.name}'s plain offer shows nothing "
        "unless a secure one is accepted"
    )


def fingerprint_matches(s: FloorSession) -> Evidence:
    """RFC 8856 / R8: the certificate on the BFCP TLS connection is the one a=fingerprint names."""
    seen = answer_secure(s)
    if s.client is None:
        no_connection(s)
    if s.client.peer is None:
        raise NonConformance("the BFCP connection presented no certificate")
    algo, advertised = s.answer.fingerprint  # type: ignore[union-attr, misc]
    if algo != "SHA-256":
        raise Inconclusive(f"a=fingerprint uses {algo}; the suite checks SHA-256")
    presented = s.client.peer.fingerprint_sha256.upper()
    if presented != advertised:
        raise NonConformance(
            f"the floor server presents a certificate with SHA-256 {presented}, but the answer's "
            f"a=fingerprint is {advertised}"
        )
    return seen + Evidence.of(bfcp_tls_connections=1, certificates_compared=1)


def hello_answered(got: Received | None) -> Evidence:
    if got is None:
        raise Inconclusive("the floor server closed the connection on Hello")
    if got.message.primitive != b.Primitive.HELLO_ACK:
        raise Inconclusive(f"Hello was answered with {got.message.primitive_name}, not HelloAck")
    return Evidence.of(hellos_answered=1)


def _judge_cycle(s: FloorSession, *, hung: type[Exception]) -> Evidence:
    """A connected cycle: HelloAck, the floor granted, its release confirmed, all over TLS.

    A close is a finding (the server took floor control in SDP and will not do it); a request
    not granted is inconclusive (the floor may be held, or policy may differ); silence is
    `hung` (inconclusive for a plain grant check, a finding where the server answered before).
    """
    c = s.cycle
    if c is None:
        raise Inconclusive(f"{s.name} never requested the floor")
    for step in ("Hello", "FloorRequest", "FloorRelease"):
        if c.silent == step:
            raise hung(f"{s.name}'s {step} got no answer before the deadline")
        if step not in c.answers:
            raise Inconclusive(f"{s.name}'s {step} was never sent")  # an earlier step stopped
        got = c.answers[step]
        if got is None:
            raise NonConformance(f"the floor control server closed {s.name}'s connection on {step}")
        if step == "Hello" and got.message.primitive != b.Primitive.HELLO_ACK:
            raise NonConformance(
                f"{s.name}'s Hello was answered with {describe_answer(got)}, not HelloAck"
            )
        if step == "FloorRequest" and b.RequestStatus.GRANTED not in request_statuses(got):
            raise Inconclusive(f"{s.name}'s floor request was not granted ({describe_answer(got)})")
        if step == "FloorRelease" and b.RequestStatus.RELEASED not in request_statuses(got):
            raise NonConformance(
                f"{s.name}'s floor release was not confirmed ({describe_answer(got)})"
            )
    if not c.tls:
        raise NonConformance(f"{s.name}'s floor control exchange did not run over TLS")
    return Evidence.of(bfcp_exchanges_answered=len(c.answers), floor_grants=1, floor_releases=1)


def granted_and_released(s: FloorSession) -> Evidence:
    """O5/R8: floor control works while secure: granted, then released, over TLS."""
    c = s.cycle
    if c is None or not c.connected:
        if c is None and s.client is not None:
            raise Inconclusive(f"{s.name} never requested the floor (an earlier step failed)")
        no_connection(s)
    return _judge_cycle(s, hung=Inconclusive)


def _control_failure(control: FloorSession | None) -> str | None:
    """Why `control`'s own request-and-release does not stand as a positive control, or None."""
    if control is None or control.cycle is None:
        return "no request under the participant's own user id was made"
    if not control.cycle.connected:
        return f"no connection: {control.connect_error}"
    try:
        _judge_cycle(control, hung=Inconclusive)
    except (NonConformance, Inconclusive) as exc:
        return str(exc)
    return None


def foreign_request_refused(
    got: Received | None, name: str, other: str, control: FloorSession | None = None
) -> Evidence:
    """R8/O5: a request carrying another participant's user id ends in an Error (or a close).

    Accepting it is a finding on its own. Refusing it counts only beside the positive control:
    `name`'s request under its own user id, on the same kind of connection (TLS with its own
    certificate), was granted and released; a server that refuses everything proves nothing.
    """
    if got is not None and got.message.primitive != b.Primitive.ERROR:
        raise NonConformance(
            f"the floor server answered {name}'s request for {other}'s user id with "
            f"{describe_answer(got)}"
        )
    why = _control_failure(control)
    if why is not None:
        raise Inconclusive(
            f"the positive control failed ({why}): an Error or a close for {other}'s user id "
            f"shows nothing unless {name}'s own request is granted on such a connection"
        )
    return Evidence.of(
        f"{name}'s floor request under its own user id was granted and released over TLS",
        requests_for_another_user_id=1,
        refused_with_an_Error=int(got is not None),
        refused_with_a_close=int(got is None),
    )


def malformed_handled(probes: Sequence[FuzzProbe], baseline: str | None = None) -> Evidence:
    """Each malformed message that reached the server gets an Error or a close.

    Another answer is a finding, and so is silence (a hang). A probe that never reached the
    server is not evidence either way. `baseline` is what a well-formed Hello got just before
    the probes: unless it was a HelloAck, an Error to a malformed message shows nothing (a
    server that answers everything with an Error would pass).
    """
    if not probes:
        raise Inconclusive("no malformed message was sent")
    delivered = [p for p in probes if p.delivered]
    answered = [p for p in delivered if p.result == "answered"]
    if answered:
        first = answered[0]
        raise NonConformance(
            f"{len(answered)} of {len(delivered)} malformed BFCP messages were answered with "
            f"{first.answer or 'a message'}, not an Error (first: {first.sent[:24].hex()})"
        )
    silent = [p for p in delivered if p.result == "silent"]
    if silent:
        raise NonConformance(
            f"{len(silent)} of {len(delivered)} malformed BFCP messages got neither an Error nor a "
            f"close (first: {silent[0].sent[:24].hex()})"
        )
    if not delivered:
        if baseline == "unreachable":
            raise TargetUnreachable(
                f"the floor control server could not be reached: none of the {len(probes)} "
                "malformed messages was sent"
            )
        raise Inconclusive(
            f"none of the {len(probes)} malformed messages reached the server: nothing to judge"
        )
    if baseline != "HelloAck":
        raise Inconclusive(
            f"a well-formed Hello before the malformed messages got {baseline or 'nothing'}, not "
            "HelloAck: an Error proves nothing from a server that does not serve a valid request"
        )
    return Evidence.of(
        BASELINE_CONTROL,
        malformed_messages_delivered=len(delivered),
        Errors=sum(p.result == "error" for p in delivered),
        closes=sum(p.result == "closed" for p in delivered),
        malformed_messages_not_delivered=len(probes) - len(delivered),
    )


def still_serving(s: FloorSession, baseline: str | None, probes_ended: float | None) -> Evidence:
    """After malformed input, the server still grants another participant the floor.

    Judged on `s`'s request-and-release made after the probes ended, against the baseline (a
    HelloAck to a well-formed Hello just before them). Here, and only here, a server that cannot
    be reached is a finding: the suite saw it serve before the probes and gone after them.
    """
    if baseline != "HelloAck":
        raise Inconclusive(
            f"the server was not seen serving before the malformed messages (a well-formed Hello "
            f"got {baseline or 'nothing'}): whether it stopped cannot be told"
        )
    c = s.cycle
    if c is None or probes_ended is None or c.started < probes_ended:
        raise Inconclusive(f"{s.name}'s floor request did not come after the malformed messages")
    if not c.connected:
        if s.unreachable:
            raise NonConformance(
                f"the floor control server stopped serving: it answered a Hello before the "
                f"malformed messages and refused {s.name}'s connection after them "
                f"({s.connect_error})"
            )
        raise Inconclusive(f"{s.name} has no floor control connection: {s.connect_error}")
    try:
        seen = _judge_cycle(s, hung=NonConformance)
    except NonConformance as exc:
        raise NonConformance(
            f"the floor control server stopped serving after the malformed messages: {exc}"
        ) from None
    return seen + Evidence.of(
        BASELINE_CONTROL, f"{s.name}'s request came after the malformed messages"
    )


# -- the binding from the first message (floor_binding.FirstMessages) ---------------------------


def _refusal(probe: FirstMessage, what: str) -> str:
    """How `probe` was refused ('an Error', 'a close'); any other answer, or a grant on its
    connection, is a finding on its own; silence cannot be judged."""
    got = probe.answer
    if (
        probe.result == "answered"
        and got is not None
        and got.message.primitive != b.Primitive.ERROR
    ):
        raise NonConformance(f"the floor control server answered {what}: {describe_answer(got)}")
    if probe.grants:
        raise NonConformance(f"the floor control server granted the floor on {what}'s connection")
    if probe.result == "silent":
        raise Inconclusive(f"{what} got neither an answer nor a close before the deadline")
    return "an Error" if probe.result == "answered" else "a close"


def _unconnected(probe: FirstMessage, what: str) -> NoReturn:
    if probe.unreachable:
        raise TargetUnreachable(f"cannot reach the floor control server: {probe.connect_error}")
    raise Inconclusive(f"{what} was never sent: {probe.connect_error or 'no connection'}")


def _first_control(control: FirstMessage | None, probe: FirstMessage) -> str:
    """The positive control of a first-message probe, as the evidence names it: a first message
    under the sender's own user id, on a fresh TLS connection with a certificate its offer
    named, answered (HelloAck, or the floor granted and released) before the probe was sent."""
    if control is None:
        raise Inconclusive("no first message under a participant's own user id was sent")
    what = f"{control.sender}'s own first {control.primitive} on a fresh connection"
    if control.started > probe.started:
        raise Inconclusive(f"{what} came after the probe, so it cannot stand as its control")
    if not control.connected:
        _unconnected(control, what)
    if control.offered is None or control.offered != control.presented:
        raise Inconclusive(f"{what} was not on the certificate its offer named")
    got = control.answer
    if not control.tls or control.result != "answered" or got is None:
        raise Inconclusive(f"the positive control failed: {what} got {control.result}")
    expected = "HelloAck" if control.primitive == "Hello" else "the floor granted and released"
    if control.primitive == "Hello":
        ok = got.message.primitive == b.Primitive.HELLO_ACK
    else:
        ok = b.RequestStatus.GRANTED in request_statuses(got) and bool(control.released)
    if not ok:
        raise Inconclusive(
            f"the positive control failed: {what} got {describe_answer(got)}, not {expected}; "
            "a refusal proves nothing from a server that does not serve an honest first message"
        )
    return f"{what} over TLS got {expected}"


def first_foreign_refused(control: FirstMessage | None, probe: FirstMessage | None) -> Evidence:
    """R8/O5 (RFC 8855 13, 14; RFC 8856): a message sent FIRST on a fresh connection, from one
    participant's certificate, carrying another participant's user id, is refused (an Error or
    a close) and nothing is granted. A server that binds a connection to whatever user id its
    first message claims passes the later-message check and fails this one. The control is the
    same participant's own first message on a fresh connection, answered."""
    if probe is None or probe.claimed == probe.sender:
        raise Inconclusive("no first message carried another participant's user id")
    what = (
        f"{probe.sender}'s first {probe.primitive} on a fresh connection with {probe.claimed}'s "
        "user id"
    )
    if not probe.connected:
        _unconnected(probe, what)
    how = _refusal(probe, what)
    control = _first_control(control, probe)
    return Evidence.of(
        control,
        first_messages_for_another_user_id=1,
        refused_with_an_Error=int(how == "an Error"),
        refused_with_a_close=int(how == "a close"),
    )


def mismatched_certificate_refused(
    control: FirstMessage | None, probe: FirstMessage | None
) -> Evidence:
    """R8 (RFC 8122 5, RFC 8856): a BFCP client whose TLS certificate is not the one its offer's
    a=fingerprint named is refused, on its own user id, at the handshake, with an Error or a
    close, and nothing is granted. A server that trusts any certificate of the CA (or the user
    name in it) fails. The control is a client whose certificate matches its offer, served."""
    if probe is None or probe.claimed != probe.sender:
        raise Inconclusive("no first message under the prober's own user id was sent")
    if probe.offered is None or probe.offered == probe.presented:
        raise Inconclusive(
            f"{probe.sender} presented the certificate its offer named (or the offer named "
            "none): there is no mismatch to judge"
        )
    what = f"{probe.sender}'s first {probe.primitive} from a certificate its offer did not name"
    if probe.connected:
        how = _refusal(probe, what)
    elif probe.unreachable:
        _unconnected(probe, what)
    else:
        how = "the TLS handshake"  # refused before any BFCP: the strictest place to refuse
    control = _first_control(control, probe)
    return Evidence.of(
        control,
        clients_on_a_certificate_not_offered=1,
        refused_with_an_Error=int(how == "an Error"),
        refused_with_a_close=int(how == "a close"),
        refused_at_the_TLS_handshake=int(how == "the TLS handshake"),
    )
