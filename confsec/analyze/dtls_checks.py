"""DTLS-SRTP (RFC 5764) in `confsec analyze`: the handshakes judged, their keys given to media.

Datagrams whose first byte is 20-63 (RFC 7983) go to a `DtlsAssociationTracker`
(`confsec.analyze.dtls`); what each association shows is judged here:

- R3, the handshake: a NULL SRTP profile (media authenticated, not encrypted); RTP or RTCP on a
  flow before a handshake there completed, on a flow whose handshake never completed, or whose
  handshake agreed no SRTP profile (media no finished handshake keyed). An association whose
  ServerHello the capture lacks is named as not judged. None of this needs the key log.
- R3 and R4, the media: with the NSS key log of one endpoint (`CLIENT_RANDOM` lines, the same
  `--keylog` file as for SIP over TLS), an association's two SRTP master keys are derived as
  soon as its ServerHello is seen, and each is bound to the direction of the flow it protects
  (`MediaChecks.bind_key`): the SDES machinery then judges every packet under the key of its
  own association and direction, and writes every stream to the key-stream ledger. Two senders
  given the same key by their handshakes are an R4 finding of their own. Without the key log
  the streams are named as unjudged, with the reason: give the key log.
- R2: each completed association's certificates against the a=fingerprint that SDP signalled
  for that address (RFC 8122 §5), when SDP with fingerprints is visible (clear SIP, or SIP over
  TLS through tshark). A refused handshake is not judged: refusing is what a mismatch asks for.

Frame numbers stand in for the tracker's timestamps: "before the handshake completed" is an
order of frames. No key, salt or master secret appears in a finding: `key_fingerprint` names
keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confsec.analyze.dtls import (
    Address,
    AssociationKeys,
    DirectionKey,
    DtlsAssociation,
    DtlsAssociationTracker,
    KeyLog,
    NoDtlsKeys,
    association_keys,
    judge_certificate,
)
from confsec.analyze.findings import EXAMPLES, Checks, Finding, SrtpKey, Tally, Unjudged
from confsec.analyze.judgement import Judgement, findings_text, named
from confsec.analyze.media import Flow, MediaChecks
from confsec.analyze.pcap import Packet
from confsec.analyze.signalling import Fingerprint
from confsec.codec.dtls import profile_name
from confsec.codec.sdp import DTLS_SRTP_PROTOS
from confsec.media.ledger import key_fingerprint
from confsec.media.srtp import UnsupportedSuite
from confsec.observed import Evidence
from confsec.report.verdicts import Verdict

HANDSHAKE = "dtls-handshake"
FINGERPRINT = "dtls-fingerprint"
KEYLOG_HINT = "--keylog FILE, the NSS key log of one endpoint with its CLIENT_RANDOM lines"


@dataclass
class _Seen:
    """What the pass saw of one association, by frame."""

    assoc: DtlsAssociation
    first_frame: int
    hello_frame: int | None = None
    """The frame that completed its ServerHello: randoms, suite and profile known."""
    completed_frame: int | None = None
    cert_frames: dict[Address, int] = field(default_factory=dict)
    """Where each side's Certificate was complete."""
    keys: AssociationKeys | None = None
    why: str | None = None
    """Why its media keys are not known (None while not asked, and once known)."""

    @property
    def keyed_media(self) -> bool:
        """A handshake that completed with an SRTP profile: media may flow from then on."""
        return self.assoc.completed and self.assoc.selected_profile is not None


class DtlsChecks:
    """The DTLS-SRTP observer: `datagram()` for each DTLS datagram, `media_packet()` for each
    RTP/RTCP packet once `watching`, `learn_media()` for each m= line, `finish()` before the
    media settle (it hands them the reasons why keys are missing)."""

    def __init__(
        self,
        tally: Tally,
        media: MediaChecks,
        keylog: KeyLog | None,
        learn_key: Callable[[SrtpKey], None],
    ):
        self.tally = tally
        self.checks = tally.checks
        self.media = media
        self.keylog = keylog
        """None when no key log was given (then media keys cannot be had, and the reason says
        to give one); an empty `KeyLog` when it holds no CLIENT_RANDOM line."""
        self._learn_key = learn_key
        self.tracker = DtlsAssociationTracker()
        self.watching = False
        """True once the capture showed DTLS or an m= line negotiated DTLS-SRTP: from then on
        each RTP/RTCP packet is held against the handshakes of its flow (`media_packet`)."""
        self.signalled: dict[Address, list[Fingerprint]] = {}
        """(address, port) of an m= line -> the a=fingerprint values its SDPs signalled."""
        self._seen: dict[int, _Seen] = {}
        self._established: set[Flow] = set()
        self._early: dict[Flow, list[int]] = {}
        """Flow -> [packets, example frames...] of media seen before `_established` held it."""

    def learn_media(
        self, addr: str, port: int, proto: str, fingerprints: Iterable[Fingerprint] = ()
    ) -> None:
        """An m= line seen in SDP, with the fingerprints that apply to it."""
        if proto.upper() in DTLS_SRTP_PROTOS:
            self.watching = True
        fps = list(fingerprints)
        if fps and port:
            have = self.signalled.setdefault((addr, port), [])
            have.extend(fp for fp in fps if fp not in have)

    # -- the pass ------------------------------------------------------------------------------

    def datagram(self, p: Packet) -> None:
        self.watching = True
        self.checks.dtls_datagrams += 1
        src = (p.src, p.sport)
        assoc = self.tracker.feed(float(p.frame), src, (p.dst, p.dport), p.payload)
        if assoc is None:
            return
        seen = self._seen.get(id(assoc))
        if seen is None:
            seen = self._seen[id(assoc)] = _Seen(assoc, p.frame)
        if seen.hello_frame is None and assoc.server_random is not None:
            seen.hello_frame = p.frame
            self._derive(seen)
        side = assoc.sides.get(src)
        if side is not None and side.certificates and src not in seen.cert_frames:
            seen.cert_frames[src] = p.frame
        if seen.completed_frame is None and assoc.completed:
            seen.completed_frame = p.frame
            if seen.keyed_media:
                a, b = assoc.endpoints
                self._established.update(((*a, *b), (*b, *a)))

    def media_packet(self, p: Packet) -> None:
        """An RTP/RTCP packet: remembered if no handshake on its flow has completed yet."""
        flow = (p.src, p.sport, p.dst, p.dport)
        if flow in self._established:
            return
        early = self._early.get(flow)
        if early is None:
            self._early[flow] = [1, p.frame]
        else:
            early[0] += 1
            if len(early) <= EXAMPLES:
                early.append(p.frame)

    def _derive(self, seen: _Seen) -> None:
        """The ServerHello is in: derive both directions' keys and bind them to their flows."""
        assoc = seen.assoc
        if self.keylog is None:
            seen.why = (
                f"its SRTP keys come from the handshake {assoc.name()}, and no key log was "
                f"given: pass it to judge this stream ({KEYLOG_HINT})"
            )
            return
        try:
            keys = association_keys(assoc, self.keylog)
        except (NoDtlsKeys, UnsupportedSuite) as exc:
            seen.why = f"its SRTP keys cannot be derived: {exc}"
            return
        seen.keys = keys
        self.checks.dtls_keyed += 1
        if keys.null_cipher:
            seen.why = (
                f"{assoc.name()} selected {profile_name(keys.profile_id)}, whose packets the "
                "analyser does not check (the NULL profile is an R3 finding of its own)"
            )
            return
        for d in (keys.client, keys.server):
            k = d.as_srtp_key()
            self._learn_key(k)
            self.media.bind_key((*d.sender, *assoc.other(d.sender)), k)

    # -- results -------------------------------------------------------------------------------

    def finish(self) -> None:
        """Judge every association; call before `MediaChecks.settle`, which reads the hints."""
        c = self.checks
        pairs: dict[tuple[Address, Address], list[_Seen]] = {}
        for seen in self._seen.values():
            a = seen.assoc
            c.dtls_associations += 1
            c.dtls_completed += a.completed
            pairs.setdefault(a.endpoints, []).append(seen)
            self._profile(seen)
            self._hint(seen)
            if a.completed and self.signalled:
                self._certificates(seen)
        c.dtls_signalled = len(self.signalled)
        self._early_media(pairs)
        self._shared_keys()
        if self.tracker.dropped:
            self.tally.unjudged.append(
                Unjudged(
                    HANDSHAKE,
                    "R3",
                    "DTLS beyond the first associations",
                    f"{self.tracker.dropped} DTLS datagrams came after "
                    f"{self.tracker.max_associations} associations and were not followed",
                    self.tracker.dropped,
                )
            )

    def _profile(self, seen: _Seen) -> None:
        a = seen.assoc
        frame = seen.hello_frame or seen.first_frame
        if a.null_cipher and a.selected_profile is not None:
            self.checks.dtls_null += 1
            self.tally.finding(
                HANDSHAKE,
                "R3",
                "null-srtp-profile",
                f"{a.name()} selected {profile_name(a.selected_profile)}: SRTP that "
                "authenticates but does not encrypt (RFC 5764 §4.1.2), so anyone on the path "
                "hears the media",
            ).add(frame)
        elif seen.hello_frame is None and any(
            s.change_cipher_spec or s.encrypted_handshake or s.application_data
            for s in a.sides.values()
        ):
            self.tally.unjudged.append(
                Unjudged(
                    HANDSHAKE,
                    "R3",
                    a.name(),
                    "its ServerHello is not in the capture (it began inside the handshake): the "
                    "SRTP profile it selected is not known",
                    1,
                    0,
                    [seen.first_frame],
                )
            )

    def _hint(self, seen: _Seen) -> None:
        """Tell the media why the flow's keys are not known (if they are not)."""
        if seen.keys is not None and not seen.keys.null_cipher:
            return
        a = seen.assoc
        why = seen.why or (
            f"its SRTP keys cannot be derived: the ServerHello of {a.name()} is not in the capture"
        )
        x, y = a.endpoints
        self.media.key_hints[(*x, *y)] = why
        self.media.key_hints[(*y, *x)] = why

    def _certificates(self, seen: _Seen) -> None:
        c, a = self.checks, seen.assoc
        for cf in judge_certificate(a, self.signalled):
            frame = seen.cert_frames.get(cf.address, seen.first_frame)
            if cf.outcome == "matched":
                c.certificates_judged += 1
                c.certificates_matched += 1
            elif cf.outcome == "mismatch":
                c.certificates_judged += 1
                f = self.tally.finding(FINGERPRINT, "R2", "certificate-mismatch", cf.sentence)
                f.add(frame)
            else:
                why = (
                    "its Certificate is not in the capture"
                    if cf.outcome == "not-visible"
                    else "no SDP in the capture signals an a=fingerprint of a known hash for it"
                )
                self.tally.unjudged.append(
                    Unjudged(
                        FINGERPRINT,
                        "R2",
                        f"certificate of the DTLS {cf.role} {cf.address[0]}:{cf.address[1]}",
                        why,
                        1,
                        0,
                        [frame],
                    )
                )

    def _early_media(self, pairs: dict[tuple[Address, Address], list[_Seen]]) -> None:
        """Media on a flow before a handshake there completed with an SRTP profile."""
        for flow, (count, *frames) in self._early.items():
            a, b = (flow[0], flow[1]), (flow[2], flow[3])
            on_pair = pairs.get((a, b) if a <= b else (b, a))
            if not on_pair:
                continue  # no DTLS on this flow: SDES or plain media, judged elsewhere
            self.checks.dtls_early_media += count
            where = f"RTP/RTCP {flow[0]}:{flow[1]} -> {flow[2]}:{flow[3]}"
            keyed = next((s for s in on_pair if s.keyed_media), None)
            done = next((s for s in on_pair if s.assoc.completed), None)
            if keyed is not None:
                kind = "media-before-handshake"
                sentence = (
                    f"{where} before the DTLS handshake on that flow completed (frame "
                    f"{keyed.completed_frame}): media before the handshake completed, before "
                    "either end could know whom it was keying media for"
                )
            elif done is not None:
                kind = "media-without-srtp-profile"
                sentence = (
                    f"{where}, but {done.assoc.name()} negotiated no SRTP protection profile "
                    "(no use_srtp, RFC 5764 §4.1.1): media that no handshake keyed"
                )
            else:
                kind = "media-without-handshake"
                sentence = (
                    f"{where}, but no DTLS handshake on that flow completed "
                    f"({on_pair[-1].assoc.name()}): media before the handshake completed"
                )
            f = self.tally.finding(HANDSHAKE, "R3", kind, sentence)
            for frame in frames:
                f.add(frame)
            f.count += count - len(frames)

    def _shared_keys(self) -> None:
        """R4: every sender's key is its own; two handshakes that exported one key (a replayed
        or badly seeded handshake) give their streams one key stream space."""
        holders: dict[tuple[bytes, bytes], list[tuple[_Seen, DirectionKey]]] = {}
        for seen in self._seen.values():
            if seen.keys is not None:
                for d in (seen.keys.client, seen.keys.server):
                    holders.setdefault((d.key, d.salt), []).append((seen, d))
        for (key, salt), who in holders.items():
            if len(who) < 2:
                continue
            names = "; ".join(
                f"the {d.role} {d.sender[0]}:{d.sender[1]} of {s.assoc.name()}" for s, d in who
            )
            f = self.tally.finding(
                "keystream-reuse",
                "R4",
                "dtls-srtp-keys-shared",
                f"{len(who)} DTLS-SRTP senders were given one SRTP master key and salt "
                f"{key_fingerprint(key, salt)} by their handshakes ({names}): their streams "
                "share key streams whatever SSRCs they use (each handshake must export fresh "
                "keys)",
            )
            for s, _d in who:
                f.add(s.hello_frame or s.first_frame)


def judge_dtls(
    c: Checks, by_check: dict[str, list[Finding]], unjudged: dict[str, list[Unjudged]]
) -> list[Judgement]:
    """The handshake judgement (R3) when the capture holds DTLS, and the certificate judgement
    (R2) when it also holds SDP with a=fingerprint. The media keys feed the R3/R4 media
    judgements, which `confsec.analyze.command` makes as for SDES."""
    if not c.dtls_associations:
        return []
    found, open_ = by_check.get(HANDSHAKE, []), unjudged.get(HANDSHAKE, [])
    evidence = Evidence.of(
        DTLS_associations=c.dtls_associations,
        handshakes_completed=c.dtls_completed,
        associations_keyed_from_the_key_log=c.dtls_keyed,
        NULL_SRTP_profiles=c.dtls_null,
        media_packets_before_a_completed_handshake=c.dtls_early_media,
    )
    if found:
        verdict, reason = Verdict.FAIL, findings_text(found)
        if open_:
            reason += f"; also not judged: {named(open_)}"
    elif open_:
        verdict, reason = Verdict.INCONCLUSIVE, f"not every handshake was judged: {named(open_)}"
    elif not c.dtls_completed:
        verdict = Verdict.INCONCLUSIVE
        reason = f"none of the {c.dtls_associations} DTLS handshakes in the capture completed"
    else:
        verdict = Verdict.PASS
        reason = (
            f"{c.dtls_completed} of {c.dtls_associations} DTLS handshakes completed, none with a "
            "NULL SRTP profile, and no RTP/RTCP came on a flow before its handshake completed"
        )
        if not c.dtls_signalled:
            reason += "; certificates not judged: no a=fingerprint visible in the capture"
    out = [
        Judgement(
            "DTLS-SRTP handshakes select an encrypting profile and complete before media",
            "R3",
            verdict,
            reason,
            evidence,
        )
    ]
    found, open_ = by_check.get(FINGERPRINT, []), unjudged.get(FINGERPRINT, [])
    if not (c.dtls_signalled or found or open_):
        return out
    evidence = Evidence.of(
        certificates_judged=c.certificates_judged,
        certificates_matching=c.certificates_matched,
        certificates_not_judged=len(open_),
    )
    if found:
        verdict, reason = Verdict.FAIL, "; ".join(f.sentence for f in found)
        if open_:
            reason += f"; also not judged: {named(open_)}"
    elif open_:
        verdict = Verdict.INCONCLUSIVE
        reason = (
            f"{c.certificates_matched} certificates match the signalled a=fingerprint, but "
            f"not every one could be judged: {named(open_)}"
        )
    else:
        verdict = Verdict.PASS
        reason = (
            f"{c.certificates_matched} DTLS certificates of completed handshakes match the "
            "a=fingerprint their SDP signalled (RFC 8122 §5)"
        )
    out.append(
        Judgement(
            "DTLS certificates match the signalled a=fingerprint", "R2", verdict, reason, evidence
        )
    )
    return out
