"""Robustness probes on the signalling side: malformed SIP and SDP, oversized requests and
unknown crypto suites, sent to the service while a conference is running.

Two parts, as in the rest of `confsec.behaviour` (what is sent, typed and crafted, is
`confsec.behaviour.crafted`):

- sending, on the suite's loop: `SignallingProbes` opens carol's own TLS connection (her client
  certificate, her UA, so that the exchange lands in the scenario's SIP ladder) and writes the
  bytes of a `MalformedRequest`, or sends an authenticated INVITE with a `CraftedOffer` to the
  conference URI;
- the checks, pure: they judge a `RawProbe` or a `CallOutcome` and the participants' media, and
  raise `NonConformance` or `Inconclusive` from what was observed, never from what was not.

A malformed request may be answered with a 4xx, dropped without an answer (RFC 3261 allows a
server to discard what it cannot parse, and on a stream it has to close the connection when the
framing is lost) or end in a close of the connection; what it must never get is a 2xx, and it
must not cost the others their conference.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from confsec.behaviour.crafted import (
    SUPPORTED_SUITE,
    UNKNOWN_FIRST_TAG,
    CraftedOffer,
    MalformedRequest,
    RequestContext,
)
from confsec.behaviour.outcomes import CallOutcome
from confsec.behaviour.participant import NO_MEDIA, MediaStats, received_total
from confsec.codec.sdp import SdpParseError
from confsec.codec.sip import Response
from confsec.errors import (
    ConfsecError,
    Inconclusive,
    NonConformance,
    PeerTimeout,
    TlsVerificationError,
    TransportError,
)
from confsec.net.flow import Flow
from confsec.net.startup import start_ua
from confsec.net.trace import TraceEntry
from confsec.net.ua import UserAgent
from confsec.observed import Evidence

if TYPE_CHECKING:
    from confsec.behaviour.conference import ConferenceRun
    from confsec.behaviour.participant import Participant

log = logging.getLogger(__name__)

__all__ = [
    "RawProbe",
    "SignallingProbes",
    "admitted_with_offered_suite",
    "conference_went_on",
    "malformed_not_accepted",
    "measurements",
]

CLEAN_REFUSALS_5XX = frozenset({513})
"""513 Message Too Large is the 5xx that names the request as the problem (RFC 3261 §21.5.7)."""
INCOMPLETE_WATCH_S = 2.0
"""How long an answer to an incomplete request (`MalformedRequest.incomplete`) is watched for."""
BASELINE_S = 1.0

# ---------------------------------------------------------------------------- observation


@dataclass
class RawProbe:
    """What became of one malformed request carol wrote on her own TLS connection."""

    request: MalformedRequest
    sender: str = "carol"
    sent_bytes: int = 0
    connect_error: str | None = None
    """Why carol's TLS connection could not be made (then nothing was sent)."""
    responses: list[tuple[int, str]] = field(default_factory=list)
    """(status, reason) of every response received on the connection, in order."""
    unparseable: int = 0
    """Received chunks that did not parse as SIP (carol's UA then closed the connection)."""
    closed_by_peer: bool = False
    waited: float = 0.0
    """Seconds from sending to the first answer, the close, or the end of the window."""
    window: float = 0.0
    """How long an answer was waited for (the target's transaction timeout)."""

    @property
    def final(self) -> tuple[int, str] | None:
        return next(((s, r) for s, r in self.responses if s >= 200), None)

    @property
    def outcome(self) -> str:
        """One phrase for logs and reasons: how the service dealt with the request."""
        if self.connect_error is not None:
            return f"not sent: {self.connect_error}"
        if self.final is not None:
            return f"answered {self.final[0]} {self.final[1]} after {self.waited:.2f} s"
        if self.unparseable:
            return "answered with bytes that are not SIP"
        if self.closed_by_peer:
            return f"connection closed by the service after {self.waited:.2f} s"
        return (
            f"no answer within {self.window:g} s and the connection stayed open: the service "
            "discarded the request, which RFC 3261 allows for input it cannot parse"
        )


class SignallingProbes:
    """Carol's probes of one scenario. Her UA is started on first use and handed to the run
    (`keep_ua`), which closes it and puts its trace in the scenario's SIP ladder."""

    def __init__(self, conf: ConferenceRun) -> None:
        self.conf = conf
        self.uas: dict[str, UserAgent] = {}
        self.raw: RawProbe | None = None
        self.offered: dict[str, CraftedOffer] = {}
        """Participant -> the offer it sent (for the checks' sentences)."""
        self.baseline_ok = False
        """The conference carried every tone before the probe (`baseline`)."""
        self.before: dict[str, MediaStats] = {}
        """Participant -> what it had received when the probe went out: what the participant
        gets after it is judged apart from what it got before."""

    def baseline(self, names: list[str], seconds: float = BASELINE_S) -> None:
        """Everyone sends for `seconds` and `names` must hear each other over SRTP. Without
        that, a silent conference after the probe would say nothing about the probe."""
        self.conf.exchange_media(seconds)
        group = [self.conf.participant(n) for n in names]
        try:
            _carried(group, since=None)
        except NonConformance as exc:
            raise Inconclusive(
                f"before the probe the conference did not carry media between "
                f"{' and '.join(names)} ({exc}): nothing to compare the probe's effect with"
            ) from None
        self.baseline_ok = True

    def _mark(self) -> None:
        """The probe goes out now: count from here, and listen to what comes next only."""
        for p in self.conf.participants.values():
            self.before[p.name] = received_total(p)
            leg = p.legs.get("audio")
            if leg is not None:
                leg.reset_audio()

    def send_request(self, name: str, request: MalformedRequest) -> RawProbe:
        """Write `request` on a fresh TLS connection of `name`'s."""
        t = self.conf.target.timeouts
        self._mark()
        self.raw = self.conf.runtime.run(
            self._send_request(name, request),
            t.connect + t.transaction + 5,
            f"{name}'s malformed request",
        )
        self.conf.count_window("answer_watch", self.raw.waited)
        log.info("%s's %s: %s", name, request, self.raw.outcome)
        return self.raw

    def join_with_offer(self, name: str, offer: CraftedOffer) -> CallOutcome:
        """An authenticated INVITE to the conference URI with `offer`; the outcome
        is recorded as `name`'s, so the shared steps ('carol is refused with 488') judge it."""
        uri = self.conf.conference_uri
        if uri is None:
            raise Inconclusive(f"{name} cannot join: no conference was created")
        self.offered[name] = offer
        self._mark()
        out = self.conf.runtime.run(
            self._join(name, offer.craft()),
            self.conf.target.timeouts.transaction * 2 + 5,
            f"{name}'s INVITE with {offer}",
        )
        return out

    @property
    def cause(self) -> str:
        """What the last probe did, as the checks say it ("carol sent an INVITE with ...")."""
        if self.raw is not None:
            return f"{self.raw.sender} sent {self.raw.request}"
        if self.offered:
            name, offer = list(self.offered.items())[-1]
            return f"{name} sent an offer that has {offer}"
        return "the probe"

    # -- async work ----------------------------------------------------------------------------

    async def _ua(self, name: str) -> UserAgent:
        if name in self.uas:
            return self.uas[name]
        target = self.conf.target
        account = target.account(name)
        ua = await start_ua(
            target,
            self.conf.keylog,
            shown=account,
            cert=account,
            credentials=(account.username, account.password),
        )
        self.uas[name] = ua
        self.conf.keep_ua(ua)
        return ua

    async def _send_request(self, name: str, request: MalformedRequest) -> RawProbe:
        window = self.conf.target.timeouts.transaction
        if request.incomplete:
            window = min(window, INCOMPLETE_WATCH_S)
        probe = RawProbe(request, name, window=window)
        ua = await self._ua(name)
        layer = ua.transport
        try:
            flow = await ua.resolve(self.conf.target.dest, "")
        except (TransportError, TlsVerificationError, PeerTimeout) as exc:
            probe.connect_error = str(exc)
            return probe
        closed = asyncio.Event()
        previous = layer.on_closed

        def on_closed(gone: Flow, exc: Exception | None) -> None:
            if previous is not None:
                previous(gone, exc)
            if gone == flow:
                closed.set()

        layer.set_handlers(layer.on_message, layer.on_error, on_closed)
        account = self.conf.target.account(name)
        ctx = RequestContext(
            self.conf.conference_uri or self.conf.target.factory_uri,
            account.aor(self.conf.target.domain),
            flow.local[0],
            flow.local[1],
        )
        data = request.craft(ctx)
        mark = len(ua.trace)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await ua.send_raw(data, flow)
        except TransportError:
            pass  # already closed by the service: `closed` is set
        probe.sent_bytes = len(data)

        def answered(entry: TraceEntry) -> bool:
            msg = entry.message
            final = isinstance(msg, Response) and msg.status >= 200
            return entry.flow == flow and (final or isinstance(msg, bytes))

        waiters = {
            asyncio.ensure_future(ua.wait_for(answered, probe.window, since=mark)),
            asyncio.ensure_future(closed.wait()),
        }
        try:
            await asyncio.wait(waiters, timeout=probe.window, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        probe.waited = loop.time() - started
        for entry in ua.trace[mark:]:
            if entry.direction != "received" or entry.flow != flow:
                continue
            if isinstance(entry.message, Response):
                probe.responses.append((entry.message.status, entry.message.reason))
            elif isinstance(entry.message, bytes):
                probe.unparseable += 1
        probe.closed_by_peer = closed.is_set() and not probe.unparseable
        layer.set_handlers(layer.on_message, layer.on_error, previous)
        layer.close_flow(flow)
        return probe

    async def _join(self, name: str, body: bytes) -> CallOutcome:
        out = await self.conf.join_async(name, body, keep=False)
        if out.dialog is not None:
            # Admitted: the admission is the observation. Leave at once, so the service stops
            # sending media to the probe's unused port and the others see no more rekeys.
            try:
                await out.dialog.bye(timeout=self.conf.target.timeouts.transaction)
            except ConfsecError as exc:
                log.info("%s's BYE after the admission failed: %s", name, exc)
        return out


def measurements(probe: RawProbe) -> dict[str, float]:
    """The probe's numbers for the scenario's evidence (`status` 0: no final answer)."""
    final = probe.final
    return {
        "status": float(final[0]) if final else 0.0,
        "closed_by_peer": float(probe.closed_by_peer),
        "seconds_to_outcome": round(probe.waited, 3),
        "silent_window_s": probe.window if final is None and not probe.closed_by_peer else 0.0,
        "bytes_sent": float(probe.sent_bytes),
    }


# --------------------------------------------------------------------------------- checks


def malformed_not_accepted(probe: RawProbe | None) -> Evidence:
    """R1: a malformed or oversized request is refused (4xx, or 513), dropped or answered with
    a close of the connection; a 2xx means the service acted on a request it cannot have read."""
    if probe is None:
        raise Inconclusive("no malformed request was sent (an earlier step did not get there)")
    name = probe.sender
    what = f"{probe.request} from {name}"
    if probe.connect_error is not None:
        raise Inconclusive(
            f"{name} could not open her own TLS connection to the service, so {probe.request} was "
            f"never sent: {probe.connect_error}"
        )
    final = probe.final
    if final is not None:
        status, reason = final
        if 200 <= status < 300:
            raise NonConformance(
                f"the service accepted {what} with {status} {reason}; a request it cannot parse "
                "must be refused with a 4xx or dropped, never acted on"
            )
        if 400 <= status < 500 or status in CLEAN_REFUSALS_5XX:
            return Evidence.of(f"refused with {status} {reason}", requests_sent=1, refusals=1)
        raise Inconclusive(
            f"the service answered {what} with {status} {reason}: not an acceptance, but not a "
            "refusal that names the request as malformed (a 4xx, or 513) either, so the check "
            "cannot tell a clean refusal from an internal failure"
        )
    if probe.unparseable:
        raise Inconclusive(
            f"the service answered {what} with bytes that are not SIP: the check cannot tell "
            "whether it accepted the request"
        )
    # A close, or silence with the connection still open for the whole window: both are clean
    # (RFC 3261 18.3: framing lost on a stream; discarding unparseable input is allowed).
    how = "closed the connection" if probe.closed_by_peer else f"silent for {probe.window:g} s"
    return Evidence.of(f"the service {how}", requests_sent=1)


def _carried(group: list[Participant], since: dict[str, MediaStats] | None) -> int:
    """Each of `group` received media (after `since`), all of it authenticating, and hears
    every other one's tone; NonConformance naming what is missing otherwise."""
    problems, judged = [], 0
    for p in group:
        got = received_total(p)
        if since is not None:
            got = got - since.get(p.name, NO_MEDIA)
        if got.judged <= 0:
            problems.append(f"{p.name} received no media at all")
            continue
        judged += got.judged
        if got.refused:
            problems.append(
                f"{got.refused} of the {got.judged} packets {p.name} received did not "
                f"authenticate under the negotiated key ({got.refusals()})"
            )
        others = {o.name: o.tone_hz for o in group if o is not p}
        heard = p.heard_tones(list(others.values()))
        missing = [o for o, hz in others.items() if hz not in heard]
        if missing:
            problems.append(f"{p.name} does not hear {' or '.join(missing)}")
    if problems:
        raise NonConformance("; ".join(problems))
    return judged


def conference_went_on(
    participants: Iterable[Participant],
    cause: str,
    baseline_ok: bool,
    since: dict[str, MediaStats],
) -> Evidence:
    """R1/R3: after `cause`, the others still hear each other and every packet they received
    since the probe authenticates: the probe cost them nothing. Judged only against a baseline
    in which they did (`SignallingProbes.baseline`), on what arrived after the probe."""
    group = list(participants)
    if len(group) < 2:
        raise Inconclusive(
            f"fewer than two participants are in the conference: nothing shows whether it "
            f"went on after {cause}"
        )
    if not baseline_ok:
        raise Inconclusive(
            f"no baseline showed the conference carrying media before {cause}: whether it went "
            "on cannot be told apart from a conference that never carried any"
        )
    try:
        judged = _carried(group, since)
    except NonConformance as exc:
        raise NonConformance(
            f"after {cause}, the conference did not go on for the others: {exc}"
        ) from None
    return Evidence.of(
        "the conference carried media before the probe",
        listeners=len(group),
        packets_after_the_probe=judged,
    )


def admitted_with_offered_suite(
    outcome: CallOutcome | None,
    name: str,
    suite: str = SUPPORTED_SUITE,
    tag: int = UNKNOWN_FIRST_TAG,
) -> Evidence:
    """R3 (RFC 4568 §7.1.2): the answer accepts the supported a=crypto, with its tag, and not the
    unknown suite offered before it. Call after `checks.admitted_secure` (2xx, SRTP)."""
    _selected(outcome, name, suite, tag)
    return Evidence.of(answers=1, suites_checked=1)


def _selected(outcome: CallOutcome | None, name: str, suite: str, tag: int) -> None:
    if outcome is None or outcome.answer is None:
        raise Inconclusive(f"{name} has no SDP answer to judge (an earlier step failed)")
    audio = [m for m in outcome.answer.media if m.media == "audio" and m.port != 0]
    if not audio:
        raise NonConformance(f"the answer to {name} rejects the audio stream")
    try:
        cryptos = audio[0].crypto
    except SdpParseError as exc:
        raise NonConformance(f"the answer to {name} carries a malformed a=crypto: {exc}") from exc
    chosen = [(c.tag, c.suite) for c in cryptos]
    if chosen != [(tag, suite)]:
        shown = ", ".join(f"tag {t} {s}" for t, s in chosen) or "none"
        raise NonConformance(
            f"the answer to {name} selects {shown}, not the {suite} key {name} offered with tag "
            f"{tag} after the unknown suite"
        )
