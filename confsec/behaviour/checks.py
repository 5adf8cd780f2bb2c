"""The checks: judgements over what the suite observed, each ending in pass, fail or inconclusive.

Every function here takes observations (outcomes of calls, TLS probes, media statistics, the
key-stream ledger) and raises `NonConformance` for a finding, `Inconclusive` when the observation
does not let it judge, and returns quietly on pass. None of them talks to the network, so each can
be tested against hand-made observations and each has a defect switch that makes it fail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from confsec.codec.digest import parse_challenge
from confsec.codec.sip import parse_name_addr, parse_uri
from confsec.errors import ConfsecError, TargetUnreachable
from confsec.report.verdicts import Inconclusive, NonConformance

if TYPE_CHECKING:
    from confsec.behaviour.conference import CallOutcome, TlsProbe
    from confsec.behaviour.participant import Participant
    from confsec.media.ledger import KeyStreamLedger, KeyStreamReuse, LedgerRow

# RFC 3261 21.4.26 / 21.6.4: both say "the offer is not acceptable".
NOT_ACCEPTABLE = {488, 606}


def service_reachable(probe: TlsProbe) -> None:
    if probe.connect_error is not None:
        raise TargetUnreachable(f"cannot connect to the service: {probe.connect_error}")
    if not probe.handshake_ok:
        raise Inconclusive(
            f"the TLS handshake with the service failed ({probe.tls_error}); scenarios that need "
            "a secure connection cannot judge (R2 checks the certificate itself)"
        )


def _final(outcome: CallOutcome | None, what: str) -> CallOutcome:
    if outcome is None:
        raise Inconclusive(f"{what}: no request was sent (an earlier step did not get that far)")
    if outcome.error is not None:
        raise Inconclusive(f"{what}: {outcome.error}")
    if outcome.status is None:
        raise Inconclusive(f"{what}: no final response")
    return outcome


def conference_uri_is_focus(outcome: CallOutcome | None, factory_uri: str) -> None:
    """R1: 2xx from the factory with Contact <conference URI>;isfocus (RFC 4579 5.1)."""
    out = _final(outcome, "conference creation")
    if not 200 <= out.status < 300:
        raise NonConformance(
            f"the factory refused a secure creation with {out.status} {out.reason}"
        )
    contact = out.response.headers.get("Contact") if out.response else None
    if not contact:
        raise NonConformance("the 200 OK to the factory INVITE carries no Contact")
    addr = parse_name_addr(contact)
    if "isfocus" not in {k.lower() for k in addr.params}:
        raise NonConformance(f"the focus's Contact {contact!r} is not marked ;isfocus")
    uri = parse_uri(addr.uri)
    if uri.scheme != "sips":
        raise NonConformance(f"the conference URI {addr.uri} is not a SIPS URI")
    if addr.uri.split(";")[0] == factory_uri:
        raise NonConformance("the focus answered with the factory URI, not a conference URI")


def answer_protected(outcome: CallOutcome | None) -> None:
    """R1/R3: every accepted m-line of the answer is RTP/SAVP with a real (non-null) cipher."""
    out = _final(outcome, "the call")
    if not 200 <= out.status < 300:
        raise NonConformance(f"refused with {out.status} {out.reason}")
    if out.answer is None:
        raise NonConformance("the 200 OK carries no SDP answer")
    accepted = [m for m in out.answer.media if m.port != 0]
    if not accepted:
        raise NonConformance("the answer rejects every media stream")
    for m in accepted:
        if "SAVP" not in m.proto:
            raise NonConformance(f"the answer's m={m.media} uses {m.proto}, not SRTP")
        cryptos = m.crypto
        if not cryptos:
            raise NonConformance(f"the answer's m={m.media} carries no a=crypto key")
        for c in cryptos:
            if c.is_null:
                raise NonConformance(f"the answer's m={m.media} selects null encryption")


def admitted_secure(outcome: CallOutcome | None, name: str) -> None:
    out = _final(outcome, f"{name}'s INVITE")
    if not 200 <= out.status < 300:
        raise NonConformance(
            f"{name} was refused with {out.status} {out.reason} although the request was valid"
        )
    answer_protected(out)


def refused(outcome: CallOutcome | None, name: str, codes: set[int]) -> None:
    """The request must be refused; the expected code tells us why it was refused."""
    out = _final(outcome, f"{name}'s INVITE")
    if 200 <= out.status < 300:
        raise NonConformance(
            f"{name}'s request was accepted ({out.status} {out.reason}); it must be refused "
            f"with {' or '.join(map(str, sorted(codes)))}"
        )
    acceptable = codes | NOT_ACCEPTABLE if codes & NOT_ACCEPTABLE else codes
    if out.status not in acceptable:
        raise Inconclusive(
            f"{name} was refused with {out.status} {out.reason}, not "
            f"{' or '.join(map(str, sorted(codes)))}: the refusal may have another cause"
        )


def digest_challenge(outcome: CallOutcome | None, algorithm: str) -> None:
    """R2: an unauthenticated request gets a digest challenge offering `algorithm`, qop=auth."""
    out = _final(outcome, "the unauthenticated INVITE")
    if 200 <= out.status < 300:
        raise NonConformance("the service admitted a request without credentials")
    if out.status not in (401, 407) or out.response is None:
        raise Inconclusive(f"expected a 401 challenge, got {out.status} {out.reason}")
    name = "WWW-Authenticate" if out.status == 401 else "Proxy-Authenticate"
    offered = []
    for value in out.response.headers.get_all(name):
        try:
            ch = parse_challenge(value)
        except ConfsecError as exc:
            raise NonConformance(f"malformed {name}: {exc}") from exc
        offered.append(ch)
        if ch.algorithm.upper() == algorithm.upper() and "auth" in ch.qop:
            return
    algs = ", ".join(f"{c.algorithm} qop={'/'.join(c.qop) or '-'}" for c in offered) or "none"
    raise NonConformance(f"the challenge does not offer {algorithm} with qop=auth (offers {algs})")


def certificate_valid_for(probe: TlsProbe | None, domain: str) -> None:
    """R2: the service's certificate chains to the trusted CA and names the service domain."""
    if probe is None:
        raise Inconclusive("no TLS connection was attempted")
    if probe.connect_error is not None:
        raise TargetUnreachable(f"cannot connect to the service: {probe.connect_error}")
    if not probe.handshake_ok:
        if not probe.cert_rejected:
            raise Inconclusive(
                f"the TLS handshake failed before a certificate could be judged: {probe.tls_error}"
            )
        raise NonConformance(
            f"the service's certificate does not validate for {domain}: {probe.tls_error}"
        )
    if probe.peer is None or domain not in probe.peer.dns_names:
        names = ", ".join(probe.peer.dns_names) if probe.peer else "none"
        raise NonConformance(f"the certificate's DNS names ({names}) do not include {domain}")


def tls_refused(probe: TlsProbe | None) -> None:
    """R2 with mutual TLS: a client without a certificate gets no service at all.

    With TLS 1.3 the client's handshake completes before the server checks the certificate,
    so the probe sends a request and reads: an alert or a close is a refusal, a SIP answer is not.
    """
    if probe is None:
        raise Inconclusive("no TLS connection was attempted")
    if probe.connect_error is not None:
        raise TargetUnreachable(f"cannot connect to the service: {probe.connect_error}")
    if probe.response_status is not None:
        raise NonConformance(
            f"the service answered {probe.response_status} to a client that presented no "
            "certificate"
        )
    if probe.handshake_ok and not probe.closed_by_peer:
        raise Inconclusive("the connection neither answered nor was closed by the service")


def media_authenticates(participants: Iterable[Participant]) -> None:
    """R3: every packet each participant received is SRTP that authenticates."""
    problems, silent, judged = [], [], 0
    for p in participants:
        for media, stats in p.receive_stats().items():
            if stats.received == 0:
                silent.append(f"{p.name} received no {media} packets")
                continue
            if stats.judged == 0:
                silent.append(
                    f"{p.name}'s {stats.held} {media} packets are still waiting for a key"
                )
                continue
            judged += 1
            if stats.refused:
                problems.append(
                    f"{p.name}: {stats.refused} of {stats.judged} {media} packets did not "
                    f"authenticate under the negotiated key ({stats.refusals()})"
                )
    # A finding on one leg stands even when another leg stayed silent.
    if problems:
        raise NonConformance("; ".join(problems))
    if silent:
        raise Inconclusive(f"{'; '.join(silent)}: nothing to judge")
    if not judged:
        raise Inconclusive(
            "no participant has a media stream the target answered: nothing to judge"
        )


def hears_others(participants: Iterable[Participant]) -> None:
    """R3 (media path works while protected): each hears every other tone and not its own."""
    group = list(participants)
    tones = {p.name: p.tone_hz for p in group}
    problems = []
    for p in group:
        heard = p.heard_tones(list(tones.values()))
        missing = [o for o, f in tones.items() if o != p.name and f not in heard]
        if missing:
            problems.append(f"{p.name} does not hear {', '.join(missing)}")
        if tones[p.name] in heard:
            problems.append(f"{p.name} hears its own tone")
    if problems:
        raise NonConformance("; ".join(problems))


def does_not_hear(listener: Participant, speaker: Participant) -> None:
    """R3: media that was not protected must not reach the others."""
    heard = listener.heard_tones([speaker.tone_hz, *listener.other_tones()])
    if not any(f in heard for f in listener.other_tones() if f != speaker.tone_hz):
        raise Inconclusive(f"{listener.name} heard no one at all: the window shows nothing")
    if speaker.tone_hz in heard:
        raise NonConformance(
            f"{listener.name} hears {speaker.name}'s tone although {speaker.name} sent plain RTP"
        )


def _scope_matches(f: KeyStreamReuse, scope: str) -> bool:
    a, b = f.streams[0], f.streams[-1]
    if scope == "participants":
        return a.owner != b.owner
    if scope == "directions":
        return a.owner == b.owner and a.media == b.media and a.direction != b.direction
    if scope == "media":
        return a.owner == b.owner and a.media != b.media
    return True


def no_key_stream_reuse(ledger: KeyStreamLedger, scope: str) -> None:
    """R4: no two streams share (master key, master salt, SSRC) within `scope`."""
    if len(ledger) == 0:
        raise Inconclusive("the ledger recorded no streams")
    findings = [
        f for f in ledger.findings() if f.kind == "keystream-reuse" and _scope_matches(f, scope)
    ]
    if findings:
        raise NonConformance("; ".join(f.sentence for f in findings))


def every_stream_observed(ledger: KeyStreamLedger) -> None:
    """Every key in the ledger carried packets, so reuse could be judged on the wire.

    A key that a rekey (R6) replaced before it was used leaves no key stream behind: a silent
    row is fine when the same stream has a later epoch (label `... epoch-N`).
    """
    rows = ledger.entries()
    if not rows:
        raise Inconclusive("the ledger recorded no streams")

    def base(r: LedgerRow) -> tuple[str, ...]:
        s = r.stream
        return (s.owner, s.peer, s.media, s.direction, re.sub(r"\s*epoch-\d+$", "", s.label))

    last = {base(r): i for i, r in enumerate(rows)}
    silent = [
        str(r.stream) for i, r in enumerate(rows) if r.packets_seen == 0 and last[base(r)] == i
    ]
    if silent:
        raise Inconclusive(f"no packets seen on {', '.join(silent)}: reuse cannot be excluded")


def _judgeable(probes: dict[str, TlsProbe]) -> list[tuple[str, TlsProbe]]:
    """The interface probes to judge; none named, or one unreachable, leaves it inconclusive."""
    if not probes:
        raise Inconclusive("the capability statement names no internal key interface")
    for name, probe in probes.items():
        if probe.connect_error is not None:
            raise Inconclusive(f"cannot connect to {name}: {probe.connect_error}")
    return list(probes.items())


def interfaces_protected(probes: dict[str, TlsProbe]) -> None:
    """O1: every internal interface carrying media keys runs TLS with a valid certificate."""
    problems = [
        f"{name} does not complete TLS ({probe.tls_error}): keys may cross it in the clear"
        for name, probe in _judgeable(probes)
        if not probe.handshake_ok
    ]
    if problems:
        raise NonConformance("; ".join(problems))


def interfaces_refuse_anonymous(probes: dict[str, TlsProbe]) -> None:
    """O1 (NDS/IP authenticates both ends): a peer without a certificate is refused."""
    problems = []
    for name, probe in _judgeable(probes):
        if probe.handshake_ok and not probe.closed_by_peer:
            problems.append(f"{name} accepted a TLS client that presented no certificate")
        elif not probe.handshake_ok and "certificate" not in (probe.tls_error or "").lower():
            raise Inconclusive(f"{name}: TLS failed for another reason ({probe.tls_error})")
    if problems:
        raise NonConformance("; ".join(problems))
