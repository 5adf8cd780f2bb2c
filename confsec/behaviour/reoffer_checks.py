"""The checks of a participant's own in-dialog offers (R3): what became of them, judged.

The records (`InDialogOffer`, `Window`) are what `confsec.behaviour.reoffer` observed while it
drove the offers; the functions here judge them, and the packets the participants received, by
trial decryption under the keys each participant was given, never by trusting the
signalling. Each raises `NonConformance` for a finding and `Inconclusive` when the observation
does not allow a judgement (a failed positive control first of all), and returns the
`Evidence` a pass rests on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from confsec.behaviour.checks import NOT_ACCEPTABLE
from confsec.behaviour.participant import COMMON, Key, Participant, stream_kind
from confsec.codec.sdp import CryptoAttribute, MediaDescription, SdpParseError, SessionDescription
from confsec.errors import Inconclusive, NonConformance
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.srtp import SrtpReceiver, new_receiver
from confsec.observed import Evidence

__all__ = [
    "InDialogOffer",
    "Window",
    "control_moved_keys",
    "kept_previous_keys",
    "offer_refused",
]

UPDATE_UNSUPPORTED = frozenset({405, 501})
"""RFC 3311 is optional: a target without UPDATE refuses the method, and the offer with it."""


@dataclass
class InDialogOffer:
    """One offer a participant made in its dialog, and what became of it."""

    name: str
    method: str
    """As the features name it: 're-INVITE' or 'UPDATE'."""
    what: str
    """What was offered, for the sentences: 'a new SDES key', 'plain RTP', a suite name..."""
    offered: dict[str, CryptoAttribute] = field(default_factory=dict)
    """Per leg, the key offered (a secure offer): the participant's new sending key."""
    recv_before: dict[str, Key] = field(default_factory=dict)
    """Per leg, the key the focus sent with before the offer."""
    held_before: list[Key] = field(default_factory=list)
    """Every key the focus gave the participant before the offer (to name old-key packets)."""
    answer_keys: dict[str, Key] = field(default_factory=dict)
    """Per leg, the focus's new key, when an accepted secure offer was taken (`switch_keys`)."""
    status: int | None = None
    reason: str = ""
    answer: SessionDescription | None = None
    error: str | None = None
    """Why there is no final response (no answer, transport failure, SDP that does not parse)."""
    glare: int = 0
    """491s received (each retried once after the RFC 3261 section 14.1 wait)."""
    answered_at: float | None = None
    """Loop time the final response arrived: what was received after it is judged."""
    probe_status: int | None = None
    """The answer to an in-dialog OPTIONS sent after a refusal: the focus still knows the
    dialog unless it is 481."""
    dialog_ended: str | None = None
    """Why the participant's dialog ended, if it did (read when the checks run)."""

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def sentence(self) -> str:
        return f"{self.name}'s {self.method} offering {self.what}"


@dataclass
class Window:
    """A stretch of media the checks judge: from `started` (loop time) on."""

    started: float
    sent: dict[str, int] = field(default_factory=dict)
    """Packets each participant sent in it."""


def usable(m: MediaDescription) -> CryptoAttribute | None:
    try:
        return next((c for c in m.crypto if not c.is_null and c.is_known), None)
    except SdpParseError:
        return None


def secure_answer(offer: InDialogOffer) -> bool:
    """Every leg offered a key got one back that encrypts (else the participant stays put)."""
    assert offer.answer is not None
    got = {stream_kind(m) for m in offer.answer.media if m.port != 0 and usable(m)}
    return bool(offer.offered) and set(offer.offered) <= got


def unique(keys: list[Key]) -> list[Key]:
    return list(dict.fromkeys(keys))


# -- judging -----------------------------------------------------------------------------------


@dataclass
class _Judged:
    """What the packets of one leg after some moment came to, by trial decryption."""

    expected: int = 0
    older: int = 0
    """Under a key the participant held before, not an expected one."""
    older_before_first: int = 0
    """Of those, arrived before the first packet under an expected key (in flight at a switch)."""
    neither: int = 0
    """Under no key the participant holds: plain RTP, or a key it was never given."""

    @property
    def total(self) -> int:
        return self.expected + self.older + self.neither


def _judge(packets: list[bytes], expected: list[Key], older: list[Key]) -> _Judged:
    scratch = KeyStreamLedger()

    def rxs(keys: list[Key], what: str) -> list[SrtpReceiver]:
        return [
            new_receiver(scratch, StreamId("trial", "-", "audio", "recv", f"{what}{n}"), *k)
            for n, k in enumerate(keys)
        ]

    want, old = rxs(expected, "x"), rxs([k for k in older if k not in expected], "o")
    out = _Judged()
    for data in packets:
        if len(data) >= 2 and 192 <= data[1] <= 223:
            continue  # RTCP on the muxed port: not a media packet
        if any(rx.try_unprotect(data) is not None for rx in want):
            out.expected += 1
        elif any(rx.try_unprotect(data) is not None for rx in old):
            out.older += 1
            out.older_before_first += out.expected == 0
        else:
            out.neither += 1
    return out


def _after(p: Participant, kind: str, since: float) -> list[bytes]:
    leg = p.legs[kind]
    return [d for t, _, d in list(leg.recent or ()) if t >= since]


def _later_keys(p: Participant, kind: str, since: float) -> list[Key]:
    """Keys a re-INVITE of the focus's own (a rekey) brought after `since`: legitimate too."""
    return [r.recv_keys[kind] for r in p.rekeys if r.at > since and kind in r.changed]


def _unicast(p: Participant) -> list[str]:
    return [k for k, leg in p.legs.items() if k != COMMON and leg.remote is not None]


def _tones(p: Participant, others: list[Participant]) -> tuple[int, list[str]]:
    """Tones heard between `p` and each other one, both ways, and who missed whom."""
    heard, missing = 0, []
    for o in others:
        for listener, speaker in ((o, p), (p, o)):
            if speaker.tone_hz in listener.heard_tones([speaker.tone_hz]):
                heard += 1
            else:
                missing.append(f"{listener.name} does not hear {speaker.name}")
    return heard, missing


def control_moved_keys(
    offer: InDialogOffer, window: Window | None, p: Participant, others: list[Participant]
) -> Evidence:
    """The positive control: the legitimate re-INVITE was answered 200 with a fresh key for
    every stream, and in the window after it every packet `p` received authenticates under the
    focus's new key (packets under the old one only while the switch was in flight), and `p`,
    sending under its own new key only, and the others hear each other."""
    failed = f"control failed: {offer.sentence}"
    why = "; a refusal of a faulty offer would not show that the target tells them apart"
    if offer.error is not None:
        raise Inconclusive(f"{failed}: {offer.error}{why}")
    if not offer.accepted:
        raise Inconclusive(f"{failed} was answered {offer.status} {offer.reason}{why}")
    if offer.answer is None or not secure_answer(offer):
        raise Inconclusive(f"{failed} was answered {offer.status} without a key for every stream")
    keys = offer.answer_keys
    stale = [k for k in offer.offered if keys.get(k) in offer.held_before]
    if stale:
        raise Inconclusive(f"{failed}: the focus answered {', '.join(stale)} with a key it used")
    assert window is not None and offer.answered_at is not None
    problems, received = [], 0
    for kind in _unicast(p):
        if kind not in keys:
            continue
        new = [keys[kind], *_later_keys(p, kind, offer.answered_at)]
        got = _judge(_after(p, kind, window.started), new, offer.held_before)
        received += got.expected
        late_old = got.older - got.older_before_first
        if not got.expected or late_old or got.neither:
            problems.append(
                f"of the {got.total} {kind} packets {p.name} received, {got.expected} open under "
                f"the focus's new key, {late_old} under an old one after that, {got.neither} "
                "under none"
            )
    heard, missing = _tones(p, others)
    if problems or missing or not others:
        shown = "; ".join(problems + missing) or "nobody else is in the conference"
        raise Inconclusive(f"{failed}: media did not move to the new keys both ways: {shown}")
    return Evidence.of(
        f"{offer.sentence} answered {offer.status} with a fresh key; both directions then ran "
        "under the new keys",
        packets_received_under_the_new_key=received,
        packets_sent_under_the_new_key=window.sent.get(p.name, 0),
        tones_heard=heard,
    )


def offer_refused(offer: InDialogOffer | None, control: Evidence | None) -> Evidence:
    """R3: the in-dialog offer of plain RTP or a null cipher is refused with 488 (606; 405/501
    where UPDATE is not supported at all), and the dialog goes on."""
    if offer is None:
        raise Inconclusive("no in-dialog offer was sent (an earlier step did not get that far)")
    if control is None:
        raise Inconclusive(f"no control passed before {offer.sentence}: a refusal shows nothing")
    if offer.error is not None and not offer.accepted:
        raise Inconclusive(f"{offer.sentence}: {offer.error}")
    if offer.accepted:
        raise NonConformance(
            f"{offer.sentence} was accepted ({offer.status} {offer.reason}"
            f"{_answer_summary(offer.answer)}): the focus let an admitted participant's leg "
            "leave media protection (RFC 3261 section 14.2, RFC 4568 section 7.1.2: 488)"
        )
    if offer.status == 491:
        raise Inconclusive(
            f"{offer.sentence} met a re-INVITE of the focus's twice (491): it was never judged"
        )
    if offer.status == 481:
        raise NonConformance(
            f"{offer.sentence} was answered 481: the focus dropped the dialog instead of "
            "refusing the offer (RFC 3261 section 14.1: dialog and session stay as they were)"
        )
    codes = NOT_ACCEPTABLE | (UPDATE_UNSUPPORTED if offer.method == "UPDATE" else set())
    if offer.status not in codes:
        raise Inconclusive(
            f"{offer.sentence} was refused with {offer.status} {offer.reason}, not 488: the "
            "refusal may have another cause than the offer"
        )
    if offer.dialog_ended is not None or offer.probe_status == 481:
        raise NonConformance(
            f"after refusing {offer.sentence} the focus ended the dialog "
            f"({offer.dialog_ended or 'an OPTIONS in it got 481'}): RFC 3261 section 14.1 "
            "leaves dialog and session as they were"
        )
    alive = offer.probe_status is not None
    return Evidence.of(
        *control.controls,
        refusals=1,
        in_dialog_requests_answered_after=int(alive),
        dialogs_still_confirmed=1,
    )


def _answer_summary(answer: SessionDescription | None) -> str:
    if answer is None:
        return ""
    lines = []
    for m in answer.media:
        if m.port == 0:
            continue
        try:
            suites = " ".join(f"{c.suite} {' '.join(c.session_params)}".strip() for c in m.crypto)
        except SdpParseError:
            suites = "a malformed a=crypto"
        lines.append(f"m={m.media} {m.proto} {suites}".strip())
    return f", answer: {'; '.join(lines)}" if lines else ""


def kept_previous_keys(
    offer: InDialogOffer | None,
    p: Participant,
    others: list[Participant],
    sent: int,
    control: Evidence | None,
) -> Evidence:
    """R3: after the refused offer the session is as it was, judged by decryption: every
    packet `p` received since authenticates under the key the focus sent with before (or a
    rekey of the focus's own since), every packet the others received under their keys, and
    the others hear `p`, who sent `sent` packets under its previous key only."""
    if offer is None or offer.answered_at is None:
        raise Inconclusive("no in-dialog offer was answered: there is no 'after' to judge")
    if control is None:
        raise Inconclusive(f"no control passed before {offer.sentence}: nothing to compare with")
    since = offer.answered_at
    problems, silent = [], []
    own = theirs = 0
    if not others:
        raise Inconclusive(f"nobody but {p.name} is in the conference: nobody could hear it")
    for kind in _unicast(p):
        if kind not in offer.recv_before:
            continue
        expected = [offer.recv_before[kind], *_later_keys(p, kind, since)]
        got = _judge(_after(p, kind, since), expected, offer.held_before)
        own += got.expected
        if not got.total:
            silent.append(f"{p.name} received no {kind} packet")
        elif got.older or got.neither:
            problems.append(
                f"{got.older + got.neither} of the {got.total} {kind} packets {p.name} received "
                f"do not open under the key the focus sent with before ({got.neither} under no "
                f"key {p.name} holds: plain RTP or a key it was never given; {got.older} under "
                "an older one)"
            )
    for o in others:
        keys = unique([k for r in o.rekeys for k in r.recv_keys.values()])
        for kind in _unicast(o):
            got = _judge(_after(o, kind, since), keys, [])
            theirs += got.expected
            if got.neither:
                problems.append(
                    f"{got.neither} of the {got.total} {kind} packets {o.name} received do not "
                    f"open under any key {o.name} was given"
                )
    heard, missing = _tones(p, others)
    if missing:
        problems.append(
            f"{'; '.join(missing)} ({p.name} sent {sent} packets under its previous key)"
        )
    if problems:
        raise NonConformance(f"after {offer.sentence}: " + "; ".join(problems))
    if silent or not own:
        raise Inconclusive(f"after {offer.sentence}: {'; '.join(silent) or 'nothing to judge'}")
    return Evidence.of(
        *control.controls,
        packets_received_under_the_previous_key=own,
        packets_sent_under_the_previous_key=sent,
        packets_the_others_received_authenticated=theirs,
        tones_heard=heard,
    )
