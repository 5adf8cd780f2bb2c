"""The checks: judgements over what the suite observed, each ending in pass, fail or inconclusive.

Every function here takes observations (outcomes of calls, TLS probes, media statistics, the
key-stream ledger) and raises `NonConformance` for a finding, `Inconclusive` when the observation
does not let it judge, and on pass returns the `Evidence` the pass rests on (what was counted,
which controls passed): a check that observed nothing is inconclusive, never a pass. None of
them talks to the network, so each can be tested against hand-made observations and each has a
defect switch that makes it fail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from confsec.behaviour import dtls_checks
from confsec.codec.digest import parse_challenge
from confsec.codec.sip import parse_name_addr, parse_uri
from confsec.errors import ConfsecError, Inconclusive, NonConformance, TargetUnreachable
from confsec.observed import Evidence

if TYPE_CHECKING:
    from confsec.behaviour.outcomes import CallOutcome, TlsProbe
    from confsec.behaviour.participant import Participant
    from confsec.media.ledger import KeyStreamLedger, KeyStreamReuse, LedgerRow

# RFC 3261 21.4.26 / 21.6.4: both say "the offer is not acceptable".
NOT_ACCEPTABLE = {488, 606}
# Session parameters an answer may leave out of its a=crypto: it encrypts after all (fine).
_DROPPABLE = frozenset({"UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP"})


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


def conference_uri_is_focus(outcome: CallOutcome | None, factory_uri: str) -> Evidence:
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
    return Evidence.of(final_responses=1, focus_contacts=1)


def answer_protected(outcome: CallOutcome | None) -> Evidence:
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
        if m.is_dtls_srtp:
            dtls_checks.answer_line(m)
            continue
        cryptos = m.crypto
        if not cryptos:
            raise NonConformance(f"the answer's m={m.media} carries no a=crypto key")
        for c in cryptos:
            if c.is_null:
                raise NonConformance(f"the answer's m={m.media} selects null encryption")
    dtls_checks.handshakes(out)
    return Evidence.of(answers=1, protected_streams=len(accepted))


def admitted_secure(outcome: CallOutcome | None, name: str) -> Evidence:
    out = _final(outcome, f"{name}'s INVITE")
    if not 200 <= out.status < 300:
        raise NonConformance(
            f"{name} was refused with {out.status} {out.reason} although the request was valid"
        )
    return answer_protected(out)


def control_admitted(outcome: CallOutcome | None, name: str, what: str) -> Evidence:
    """A positive control: the valid form of the request a negative check will send is
    accepted. If not, the target refuses even what it must accept, and a refusal later in the
    scenario shows nothing (TTCN-3: a failed preamble makes the verdict inconclusive)."""
    try:
        admitted_secure(outcome, name)
    except NonConformance as exc:
        raise Inconclusive(
            f"control failed: {what} was not accepted ({exc}); a refusal of the faulty request "
            "would not show that the target tells the two apart"
        ) from None
    return Evidence.of(f"{name}: {what} accepted")


def suite_selected(outcome: CallOutcome | None, suite: str) -> Evidence:
    """R3: every keyed stream uses the one suite (or DTLS-SRTP profile) the offer named: a
    scenario "with AEAD_AES_128_GCM" must not pass on AES_CM_128_HMAC_SHA1_80."""
    out = _final(outcome, "the call")
    if out.answer is None:
        raise Inconclusive("the call has no SDP answer to read the selected suite from")
    chosen = [(m.media, c.suite) for m in out.answer.media if m.port != 0 for c in m.crypto]
    chosen += sorted(out.dtls_suites.items())  # DTLS-SRTP: the use_srtp profile selected
    if not chosen:
        raise Inconclusive("the answer carries no a=crypto and no DTLS-SRTP profile was selected")
    other = [f"m={media} selects {s}" for media, s in chosen if s != suite]
    if other:
        raise NonConformance(f"offered only {suite}, but the answer's " + "; ".join(other))
    return Evidence.of(f"answer selects {suite}", answered_streams=len(chosen))


def refused(outcome: CallOutcome | None, name: str, codes: set[int]) -> Evidence:
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
    return Evidence.of(refusals=1)


def null_cipher_not_admitted(outcome: CallOutcome | None, name: str, offer: str) -> Evidence:
    """R3: an offer that would leave media unencrypted is refused (488/606), or answered with a
    key that encrypts fully. A 200 that drops UNENCRYPTED_SRTP and encrypts is compliant; a
    200 that keeps a null suite or an UNENCRYPTED parameter is not."""
    out = _final(outcome, f"{name}'s INVITE")
    if not 200 <= out.status < 300:
        refused(out, name, NOT_ACCEPTABLE)
        return Evidence.of(refusals=1)
    if offer not in _DROPPABLE:
        raise NonConformance(
            f"{name}'s {offer} offer was accepted ({out.status} {out.reason}): its only suite "
            "does not encrypt, and an answer may select only an offered suite (RFC 4568 7.1.2)"
        )
    if out.answer is None:
        raise NonConformance(f"{name}'s {offer} offer was accepted without an SDP answer")
    keyed = 0
    for m in (m for m in out.answer.media if m.port != 0):
        if "SAVP" not in m.proto or not m.crypto:
            raise NonConformance(f"{name}'s {offer} offer was accepted with m={m.media} {m.proto}")
        for c in m.crypto:
            if c.is_null:
                raise NonConformance(
                    f"{name}'s {offer} offer was accepted without encryption "
                    f"(answer: {c.suite} {' '.join(c.session_params)})".rstrip()
                )
            keyed += 1
    if not keyed:
        raise NonConformance(f"{name}'s {offer} offer was accepted with every stream rejected")
    return Evidence.of(f"answered with full encryption instead of {offer}", answered_streams=keyed)


def digest_challenge(outcome: CallOutcome | None, algorithm: str) -> Evidence:
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
            return Evidence.of(challenges=len(out.response.headers.get_all(name)))
    algs = ", ".join(f"{c.algorithm} qop={'/'.join(c.qop) or '-'}" for c in offered) or "none"
    raise NonConformance(f"the challenge does not offer {algorithm} with qop=auth (offers {algs})")


def certificate_valid_for(probe: TlsProbe | None, domain: str) -> Evidence:
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
    return Evidence.of(tls_handshakes=1, certificates_verified=1)


def tls_control(probe: TlsProbe | None, name: str) -> Evidence:
    """The positive control of the mutual-TLS check: the same client *with* its certificate
    completes the handshake and gets a SIP answer. Without it, a refusal of the client without
    a certificate could be a service that refuses everyone (inconclusive, TTCN-3 preamble)."""
    if probe is None:
        raise Inconclusive("no TLS connection was attempted for the control")
    if probe.connect_error is not None:
        raise TargetUnreachable(f"cannot connect to the service: {probe.connect_error}")
    if not probe.handshake_ok or probe.response_status is None:
        why = probe.tls_error or ("closed" if probe.closed_by_peer else "no SIP answer")
        raise Inconclusive(
            f"control failed: {name}, with a valid client certificate, was not answered over TLS "
            f"({why}); a refusal without a certificate would show nothing"
        )
    return Evidence.of(f"{name} with a client certificate was answered {probe.response_status}")


def tls_refused(probe: TlsProbe | None, control: TlsProbe | None = None) -> Evidence:
    """R2 with mutual TLS: a client without a certificate, or with a flawed one, gets nothing.

    With TLS 1.3 the client's handshake completes before the server checks the certificate,
    so the probe sends a request and reads: an alert or a close is a refusal, a SIP answer is
    not. A handshake that failed because the suite rejected the *server's* certificate is no
    refusal (inconclusive); nor is any refusal without the control (`tls_control`)."""
    if probe is None:
        raise Inconclusive("no TLS connection was attempted")
    if probe.connect_error is not None:
        raise TargetUnreachable(f"cannot connect to the service: {probe.connect_error}")
    if probe.response_status is not None:
        raise NonConformance(
            f"the service answered {probe.response_status} to a client that presented "
            f"{probe.presented}"
        )
    if probe.cert_rejected:
        raise Inconclusive(
            f"the suite rejected the service's certificate ({probe.tls_error}): the handshake "
            "ended before the service could refuse anything"
        )
    if probe.handshake_ok and not probe.closed_by_peer:
        raise Inconclusive("the connection neither answered nor was closed by the service")
    if not probe.handshake_ok and probe.alert is None:
        raise Inconclusive(f"the TLS handshake failed without a refusal: {probe.tls_error}")
    if control is None:
        raise Inconclusive("no control: nothing shows a client with a certificate is admitted")
    return Evidence.of(
        *tls_control(control, "the same client").controls,
        connections_tried=2,
        refusals=1,
    ) + Evidence({}, (f"refused a client that presented {probe.presented}: {probe.refusal}",))


def media_authenticates(participants: Iterable[Participant]) -> Evidence:
    """R3: every packet each participant received is SRTP that authenticates."""
    problems, silent, judged, packets, strays = [], [], 0, 0, 0
    for p in participants:
        for media, stats in p.receive_stats().items():
            strays += stats.strays
            if stats.received == 0:
                silent.append(f"{p.name} received no {media} packets{stats.set_aside()}")
                continue
            if stats.judged == 0:
                silent.append(f"{p.name}'s {stats.held} {media} packets still wait for a key")
                continue
            judged += 1
            packets += stats.judged
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
        raise Inconclusive("no participant has a media stream the target answered: nothing judged")
    return Evidence.of(
        streams=judged, packets_judged=packets, packets_refused=0, datagrams_set_aside=strays
    )


def hears_others(participants: Iterable[Participant]) -> Evidence:
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
    if len(group) < 2:
        raise Inconclusive("fewer than two participants: nobody could hear anybody")
    return Evidence.of(listeners=len(group), tones_heard=len(group) * (len(group) - 1))


def does_not_hear(listener: Participant, speaker: Participant, sent: int) -> Evidence:
    """R3: media that was not protected must not reach the others.

    Judged only with two controls: the speaker did send packets in the window (`sent`; else
    nothing was withheld), and the speaker was heard when it sent SRTP (`heard_by_all`, in a
    window before: else a mixer that mixes no one would pass)."""
    if sent <= 0:
        raise Inconclusive(f"{speaker.name} sent no packets: nothing could reach anyone")
    heard = listener.heard_tones([speaker.tone_hz, *listener.other_tones()])
    if not any(f in heard for f in listener.other_tones() if f != speaker.tone_hz):
        raise Inconclusive(f"{listener.name} heard no one at all: the window shows nothing")
    if speaker.tone_hz in heard:
        raise NonConformance(
            f"{listener.name} hears {speaker.name}'s tone although {speaker.name} sent plain RTP"
        )
    return Evidence.of(
        f"{listener.name} heard the others in the same window",
        plain_packets_sent=sent,
        listeners=1,
    )


def heard_by_all(speaker: Participant, listeners: Iterable[Participant]) -> Evidence:
    """The positive control of `does_not_hear`: with SRTP, `speaker` is heard by the others."""
    deaf = [p.name for p in listeners if speaker.tone_hz not in p.heard_tones([speaker.tone_hz])]
    if deaf:
        raise Inconclusive(
            f"control failed: {', '.join(deaf)} did not hear {speaker.name} even over SRTP, so "
            f"not hearing {speaker.name}'s plain RTP would show nothing"
        )
    return Evidence.of(f"{speaker.name} heard by the others over SRTP")


def _scope_matches(f: KeyStreamReuse, scope: str) -> bool:
    a, b = f.streams[0], f.streams[-1]
    if scope == "participants":
        return a.owner != b.owner
    if scope == "directions":
        return a.owner == b.owner and a.media == b.media and a.direction != b.direction
    if scope == "media":
        return a.owner == b.owner and a.media != b.media
    return True


#: Ledger findings that break R4 (a two-time pad: one key stream on two streams). The others
#: are reported as observations with their severity, never dropped (see `ledger_observations`).
R4_FAILS = frozenset({"keystream-reuse"})


def no_key_stream_reuse(ledger: KeyStreamLedger, scope: str) -> Evidence:
    """R4: no two streams share (master key, master salt, SSRC) within `scope`.

    A pass needs key streams seen on the wire: streams whose SSRC the ledger learnt from
    packets, in the scope's pairs (two participants, two directions, two media)."""
    findings = [f for f in ledger.findings() if f.kind in R4_FAILS and _scope_matches(f, scope)]
    if findings:
        raise NonConformance("; ".join(f.sentence for f in findings))
    rows = [r for r in ledger.entries() if r.packets_seen > 0 and r.ssrcs]
    # The claim is about the target's key streams: those it keyed and sent on (our own
    # sending keys are fresh by construction, so they alone would show nothing).
    target = [r for r in rows if r.stream.direction == "recv"]
    if not target:
        raise Inconclusive(
            "no packet from the target was seen under a key it gave (no key stream of the "
            "target on the wire): reuse cannot be judged"
        )
    if not _scope_has_pairs(rows, scope):
        raise Inconclusive(f"the target's streams seen offer no pair across {scope} to compare")
    return Evidence.of(
        streams=len(rows),
        target_streams=len(target),
        packets=sum(r.packets_seen for r in rows),
        shared_key_streams=0,
    )


def _scope_has_pairs(rows: list[LedgerRow], scope: str) -> bool:
    """Whether the streams seen hold a pair of the scope with a target-keyed stream in it."""
    recv = [r for r in rows if r.stream.direction == "recv"]
    if scope == "participants":
        return len({r.stream.owner for r in recv}) > 1
    if scope == "directions":
        sent = {(r.stream.owner, r.stream.media) for r in rows if r.stream.direction == "send"}
        return any((r.stream.owner, r.stream.media) in sent for r in recv)
    if scope == "media":
        media: dict[str, set[str]] = {}
        for r in recv:
            media.setdefault(r.stream.owner, set()).add(r.stream.media)
        return any(len(m) > 1 for m in media.values())
    return len(rows) > 1


def ledger_observations(ledger: KeyStreamLedger) -> list[str]:
    """Every ledger finding that does not fail R4, as a sentence with its kind: reported with
    the scenario (Allure, evidence.json), so none vanishes."""
    return [f"{f.kind}: {f.sentence}" for f in ledger.findings() if f.kind not in R4_FAILS]


def every_stream_observed(ledger: KeyStreamLedger) -> Evidence:
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
    return Evidence.of(streams=len(last), packets=sum(r.packets_seen for r in rows))


def _judgeable(probes: dict[str, TlsProbe]) -> list[tuple[str, TlsProbe]]:
    """The interface probes to judge; none named, or one unreachable, leaves it inconclusive."""
    if not probes:
        raise Inconclusive("the capability statement names no internal key interface")
    for name, probe in probes.items():
        if probe.connect_error is not None:
            raise Inconclusive(f"cannot connect to {name}: {probe.connect_error}")
    return list(probes.items())


def interfaces_protected(probes: dict[str, TlsProbe]) -> Evidence:
    """O1: every internal interface carrying media keys runs TLS with a certificate valid for
    the name the capability statement gives. Judged on what the server presents, whatever it
    then makes of the suite (which holds no AS certificate): a handshake that completed, or one
    the server ended with an alert after the suite had verified its certificate."""
    problems = []
    for name, probe in _judgeable(probes):
        if probe.cert_rejected:
            problems.append(f"{name}'s certificate does not validate for it ({probe.tls_error})")
        elif not probe.server_verified:
            problems.append(
                f"{name} does not complete TLS ({probe.tls_error}): keys may cross it in the clear"
            )
    if problems:
        raise NonConformance("; ".join(problems))
    return Evidence.of(interfaces=len(probes), server_certificates_verified=len(probes))


def interfaces_refuse(probes: dict[str, TlsProbe], who: str) -> Evidence:
    """O1 (NDS/IP authenticates both ends): a peer that is not the interface's partner is
    refused: one without a certificate, or a participant with its valid one. A refusal is an
    alert in the handshake (TLS 1.2) or a close right after it (TLS 1.3); the control is that
    the interface spoke TLS with a valid certificate, so the refusal concerns the client."""
    problems = []
    for name, probe in _judgeable(probes):
        if not probe.server_verified:
            raise Inconclusive(
                f"{name}: TLS failed before its certificate could be verified "
                f"({probe.tls_error}), so a refusal of {who} cannot be told from any failure"
            )
        if probe.handshake_ok and not probe.closed_by_peer:
            problems.append(f"{name} accepted a TLS client that presented {who}")
    if problems:
        raise NonConformance("; ".join(problems))
    return Evidence.of(
        "each interface presented a certificate valid for its name",
        connections_tried=len(probes),
        refusals=len(probes),
    )
