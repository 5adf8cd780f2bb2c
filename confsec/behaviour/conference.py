"""One scenario's conference as the suite drives it: participants, calls, probes and media.

`ConferenceRun` is the per-scenario fixture the steps talk to. Its public methods are synchronous
(steps are) and run the asynchronous work on the suite's loop thread with a deadline taken from
the target profile, so a silent system under test ends a step with `PeerTimeout` instead of
hanging it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from confsec.behaviour import dtls_media, rtcp_media
from confsec.behaviour.checks import ledger_observations
from confsec.behaviour.client_certs import flawed_account
from confsec.behaviour.outcomes import CallOutcome, TlsProbe
from confsec.behaviour.participant import OfferSpec, Participant, attach
from confsec.behaviour.tls_probe import tls_probe
from confsec.codec.sdp import MediaDescription, SdpParseError, parse_sdp
from confsec.codec.sip import Response, parse_name_addr
from confsec.errors import (
    ConfsecError,
    Inconclusive,
    NotApplicable,
    PeerTimeout,
    TargetUnreachable,
    TlsVerificationError,
    TransportError,
)
from confsec.media.ledger import KeyStreamLedger
from confsec.media.tone import tone_for
from confsec.net.startup import start_ua
from confsec.net.ua import UserAgent
from confsec.runtime.loop import LoopThread
from confsec.runtime.punctuality import Lateness
from confsec.target.model import Account, Target

# Tones are fixed by participant name, so that "alice's tone" is the same in every scenario.
PARTICIPANT_ORDER = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")

__all__ = ["ConferenceRun", "Wrap"]

Wrap = Callable[[bytes], tuple[bytes, str]]
"""Turns an SDP offer into an INVITE body and its Content-Type (`ConferenceRun.join_async`)."""


class ConferenceRun:
    def __init__(self, runtime: LoopThread, target: Target, keylog: Path):
        self.runtime = runtime
        self.target = target
        self.keylog = str(keylog)
        self.started = runtime.punctuality.now()
        """Loop time the scenario's conference run began: its window for `lateness()`."""
        self.ledger = KeyStreamLedger()
        self.participants: dict[str, Participant] = {}
        self.outcomes: dict[str, CallOutcome] = {}
        self.last_outcome: CallOutcome | None = None
        self.creation: CallOutcome | None = None
        self.conference_uri: str | None = None
        self.last_probe: TlsProbe | None = None
        self.notes: list[dict[str, str]] = []
        """Observations reported beside the verdict (`{text, severity}`), e.g. ledger findings
        that do not fail R4: the conf fixture hands them to the reports."""
        self.last_exchange_sent: dict[str, int] = {}
        """Packets each participant sent in the last exchange of media."""
        self.tls_control: TlsProbe | None = None
        """The control probe: a client with its certificate, answered over TLS (R2)."""
        self.interface_probes: dict[str, TlsProbe] = {}
        self.departed: set[str] = set()
        """Participants that left (BYE) or vanished: no longer members, whatever legs of
        theirs the suite keeps open to watch."""
        self._extra_uas: list[UserAgent] = []
        self.protocol_windows: dict[str, float] = {}
        """Seconds of windows the checks wait out by design, by kind: media sent for a stated
        time, the target's rekey batching window, a connection watched for a close. Their sum
        is the scenario's inherent protocol time, which `benchmarks/suite_time.py` sets the
        suite's wall time against; everything else a scenario takes is the suite's (or the
        target's) own cost."""

    def count_window(self, kind: str, seconds: float) -> None:
        """Account a protocol window of `seconds` this scenario waits for (see above)."""
        if seconds > 0:
            self.protocol_windows[kind] = self.protocol_windows.get(kind, 0.0) + seconds

    def keep_ua(self, ua: UserAgent) -> None:
        """A UA a behaviour module started for this scenario (a probe outside the participants):
        closed with the run, and its trace goes into the scenario's SIP ladder."""
        self._extra_uas.append(ua)

    def user_agents(self) -> list[tuple[str, UserAgent]]:
        """Every user agent of this scenario and whose it is: each participant's (by name),
        then the probes kept with `keep_ua` ('probe 1', ...). Their traces hold everything the
        target sent to the suite's parties (what a search for leaked keys reads)."""
        uas = [(name, p.ua) for name, p in self.participants.items()]
        return uas + [(f"probe {i}", ua) for i, ua in enumerate(self._extra_uas, 1)]

    # -- sync face for the steps ---------------------------------------------------------------

    def _run(self, coro, timeout: float | None = None, what: str = ""):
        return self.runtime.run(coro, timeout or self.target.timeouts.transaction * 2, what)

    def participant(self, name: str) -> Participant:
        try:
            return self.participants[name]
        except KeyError:
            raise Inconclusive(
                f"{name} is not in the conference (an earlier step failed)"
            ) from None

    def outcome(self, name: str) -> CallOutcome | None:
        return self.outcomes.get(name)

    def create(
        self,
        name: str,
        offer: OfferSpec,
        credentials: str = "valid",
        *,
        headers: Sequence[tuple[str, str]] = (),
        wrap: Wrap | None = None,
    ) -> CallOutcome:
        """INVITE the factory URI (RFC 4579 5.1). `credentials`: 'valid', 'none' or 'wrong';
        `headers` and `wrap` as for `join_async` (an RFC 5366 member list, say). Not
        applicable where the target does not claim creation through a factory URI (a conference
        that only calls its participants: confsec.behaviour.dialout)."""
        if not self.target.claims("dial-in-factory"):
            raise NotApplicable(
                "the scenario creates its conference through the factory URI, and the target "
                "does not claim dial-in-factory creation ("
                + ", ".join(self.target.capabilities.creation_modes)
                + ")"
            )
        out = self._run(
            self.join_async(
                name,
                offer,
                uri=self.target.factory_uri,
                credentials=credentials,
                headers=headers,
                wrap=wrap,
            )
        )
        if out.status is not None and 200 <= out.status < 300:
            self.creation = out
            contact = out.response.headers.get("Contact") if out.response else None
            self.conference_uri = parse_name_addr(contact).uri if contact else None
        elif self.creation is None:
            self.creation = out
        return out

    def join(
        self,
        name: str,
        offer: OfferSpec,
        *,
        credentials: str = "valid",
        extra_media: Sequence[MediaDescription] = (),
        headers: Sequence[tuple[str, str]] = (),
    ) -> CallOutcome:
        """INVITE the conference URI as `name` (see `join_async`)."""
        if self.conference_uri is None:
            raise Inconclusive(f"{name} cannot join: no conference was created")
        return self._run(
            self.join_async(
                name, offer, credentials=credentials, extra_media=extra_media, headers=headers
            )
        )

    def leave(self, name: str, *, watch: bool = False) -> None:
        """`name` leaves with BYE (see `leave_async`)."""
        self._run(self.leave_async(name, watch=watch), what=f"{name} leaving")

    def vanish(self, name: str, *, watch: bool = False) -> None:
        """`name` disappears without a BYE (see `vanish_async`)."""
        self._run(self.vanish_async(name, watch=watch), what=f"{name} vanishing")

    def replay_authorization(self, attacker: str, victim: str) -> CallOutcome:
        """Send a new INVITE that carries the victim's earlier Authorization verbatim."""
        p = self.participant(victim)
        auth = p.ua.last_authorization
        if auth is None:
            raise Inconclusive(f"{victim} never sent an Authorization header to replay")
        return self._run(self._replay(attacker, p, auth))

    def probe_tls(
        self,
        name: str,
        *,
        client_cert: bool = True,
        send_request: bool = False,
        flawed: str | None = None,
    ) -> TlsProbe:
        """TLS to the service as `name`: with its valid client certificate, with none
        (`client_cert=False`), or with one that is `flawed` (words of `FLAWS_BY_WORDS`)."""
        if flawed is not None:
            with flawed_account(self.target, name, flawed) as (account, presented):
                probe = self._run(
                    tls_probe(self.target, self.keylog, account, send_request, presented=presented),
                    what="TLS probe",
                )
        else:
            account = self.target.accounts.get(name) if client_cert else None
            probe = self._run(
                tls_probe(self.target, self.keylog, account, send_request), what="TLS probe"
            )
        self.last_probe = probe
        return probe

    def exchange_media(self, seconds: float, plain: set[str] | frozenset[str] = frozenset()):
        """Everyone sends for `seconds`; returns when every leg received that much media."""
        if not self.participants:
            raise Inconclusive("no participant is in the conference")
        self.count_window("media", seconds)
        self._run(
            self._exchange(seconds, plain),
            timeout=seconds + self.target.timeouts.media + 5,
            what="media exchange",
        )

    def note_ledger_observations(self) -> None:
        """Ledger findings that do not fail R4 (a shared key under distinct SSRCs, one master
        key with several salts) go to the reports as observations with their severity."""
        for text in ledger_observations(self.ledger):
            if text not in (n["text"] for n in self.notes):
                self.notes.append({"text": text, "severity": "minor"})

    def lateness(self) -> Lateness:
        """The suite's own punctuality since this scenario began (evidence for any verdict,
        and the starvation an inconclusive verdict names)."""
        return self.runtime.punctuality.during(self.started)

    def close(self) -> None:
        try:
            self._run(self._close(), timeout=10, what="closing the conference")
        except ConfsecError:
            pass

    # -- async work ----------------------------------------------------------------------------

    async def _participant(self, name: str, credentials: str) -> Participant:
        if name in self.participants:
            return self.participants[name]
        account = self.target.account(name)
        if credentials == "wrong":
            account = Account(
                account.name,
                account.username,
                account.password + "-wrong",
                account.display_name,
                account.client_cert,
                account.client_key,
            )
        ua = await start_ua(
            self.target,
            self.keylog,
            shown=account,
            cert=account,
            credentials=None if credentials == "none" else (account.username, account.password),
        )
        return self.adopt(name, account, ua)

    def adopt(self, name: str, account: Account, ua: UserAgent) -> Participant:
        """`name` becomes a participant of this scenario with `ua` (its tone fixed by name),
        whether it calls in or is called (confsec.behaviour.dialout)."""
        tones = {n: tone_for(i) for i, n in enumerate(PARTICIPANT_ORDER)}
        if name not in tones:  # guests of large conferences: the next free tone each
            extra = sum(1 for n in self.participants if n not in PARTICIPANT_ORDER)
            tones[name] = tone_for(len(PARTICIPANT_ORDER) + extra)
        p = Participant(name, account, self.target, ua, self.ledger, tones[name], {})
        p.keylog = self.keylog
        self.participants[name] = p
        for q in self.participants.values():
            q.all_tones = {n: o.tone_hz for n, o in self.participants.items()}
        return p

    async def join_async(
        self,
        name: str,
        offer: OfferSpec | bytes,
        *,
        uri: str | None = None,
        credentials: str = "valid",
        extra_media: Sequence[MediaDescription] = (),
        keep: bool = True,
        headers: Sequence[tuple[str, str]] = (),
        wrap: Wrap | None = None,
    ) -> CallOutcome:
        """INVITE `uri` (default: the conference URI) as `name`, and record the outcome as
        `name`'s, so that the shared steps ('carol is refused with 488') judge it.

        `offer` is what the participant offers (its legs opened and keyed as the spec says), or
        bytes sent as the body verbatim (a crafted offer: no legs, no keys installed).
        `extra_media` adds m-lines after the participant's own (the BFCP line of floor
        control). `credentials` is 'valid', 'none' (no answer to a challenge) or 'wrong'.
        With `keep` (the default) an admitted participant stays: the answer's keys are
        installed and it answers the focus's re-INVITEs in its dialog. Without it the call is a
        probe: its media is closed whatever the answer, and the caller decides what to do with
        `outcome.dialog`. `headers` go into the INVITE as they are (a P-Asserted-Identity the
        participant claims, say); `wrap` turns the offer into the body and its Content-Type
        (a multipart body that also carries an RFC 5366 recipient list).
        """
        uri = uri or self.conference_uri
        if uri is None:
            raise Inconclusive(f"{name} cannot join: no conference was created")
        p = await self._participant(name, credentials)
        out = CallOutcome(name, uri)
        crafted = isinstance(offer, bytes)
        if isinstance(offer, bytes):
            sdp = offer
        else:
            sdp = await p.build_offer(offer)
            if extra_media:
                own = parse_sdp(sdp)
                sdp = dataclasses.replace(own, media=(*own.media, *extra_media)).to_bytes()
        body, content_type = wrap(sdp) if wrap is not None else (sdp, "application/sdp")
        try:
            call = await p.ua.invite(
                uri,
                body,
                dest=self.target.dest,
                headers=headers,
                authenticate=credentials != "none",
                timeout=self.target.timeouts.transaction,
                content_type=content_type,
            )
        except TlsVerificationError as exc:
            out.error = f"TLS verification failed: {exc}"
        except PeerTimeout as exc:
            out.error = f"no answer: {exc}"
        except TransportError as exc:
            if isinstance(exc.__cause__, ConnectionRefusedError):
                # Nobody listens: the environment, not the system's behaviour (verdict error).
                raise TargetUnreachable(f"cannot connect to the service: {exc}") from exc
            out.error = f"transport failure: {exc}"
        else:
            self._record(out, call.response)
            out.responses = list(call.responses)
            out.dialog = call.dialog
            if keep and not crafted and out.admitted and out.answer is not None:
                p.apply_answer(out.answer)
                out.dtls_failure = await dtls_media.await_keys(
                    p, list(out.answer.media), self.target.timeouts.transaction
                )
                out.dtls_suites = dict(p.dtls.selected) if p.dtls else {}
                attach(p, call.dialog, out.answer)  # dialog for BYE and rekeys (R6)
        self.outcomes[name] = out
        self.last_outcome = out
        if not crafted and (not keep or not out.admitted):
            await p.close_media()
        return out

    async def leave_async(self, name: str, *, watch: bool = False) -> None:
        """Stop sending and leave with BYE. The leaver's keys stay in the ledger (the forward
        security judgement needs them); its sockets close.

        With `watch` the legs stay open and go on sending under the old keys, as a client that
        ignores its own BYE would: nothing may reach them any more, and nothing they send may
        reach the others (confsec.behaviour.leaving judges both)."""
        p = self.participant(name)
        if p.dialog is None:
            raise Inconclusive(f"{name} has no dialog with the focus to leave")
        if not watch:
            p.stop_media()
            rtcp_media.bye_all(p.legs)  # RFC 3550 6.6: the streams end with an SRTCP BYE
        self.departed.add(name)
        await p.dialog.bye(timeout=self.target.timeouts.transaction)
        if not watch:
            for leg in p.legs.values():
                leg.close()

    async def vanish_async(self, name: str, *, watch: bool = False) -> None:
        """Disappear as a crashed or unplugged client does: media stops and the TLS connection
        closes, with no BYE. Noticing it is the service's job (a session timer or a media
        inactivity timeout). With `watch` the legs stay open, silent, so that what the service
        still sends to them can be seen."""
        p = self.participant(name)
        p.stop_media()
        self.departed.add(name)
        await p.ua.close()
        if not watch:
            for leg in p.legs.values():
                leg.close()

    def _record(self, out: CallOutcome, response: Response) -> None:
        out.status = response.status
        out.reason = response.reason
        out.response = response
        if response.body and 200 <= response.status < 300:
            try:
                out.answer = parse_sdp(response.body)
            except SdpParseError as exc:
                out.error = f"the answer is not valid SDP: {exc}"

    async def _replay(self, attacker: str, victim: Participant, auth: str) -> CallOutcome:
        """The attacker presents itself as the victim (same AOR), with no password of its own."""
        ua = await start_ua(
            self.target,
            self.keylog,
            shown=victim.account,
            cert=self.target.accounts.get(attacker),
            credentials=None,
        )
        self._extra_uas.append(ua)
        out = CallOutcome(attacker, self.target.factory_uri)
        sdp = await victim.build_offer(OfferSpec())
        try:
            call = await ua.invite(
                self.target.factory_uri,
                sdp,
                dest=self.target.dest,
                headers=[("Authorization", auth)],
                authenticate=False,
                timeout=self.target.timeouts.transaction,
            )
        except (PeerTimeout, TransportError) as exc:
            out.error = str(exc)
        else:
            self._record(out, call.response)
        self.outcomes[attacker] = out
        self.last_outcome = out
        return out

    async def _exchange(self, seconds: float, plain: set[str] | frozenset[str]) -> None:
        active = [p for p in self.participants.values() if p.legs]
        sent_before = {p.name: sum(leg.sent for leg in p.legs.values()) for p in active}
        for p in active:
            for leg in p.legs.values():
                leg.reset_audio()  # what is heard afterwards is this window's
            p.start_media(plain=p.name in plain)
        want = max(1, int(seconds * 50))
        waiting = [
            (p.name, kind, leg)
            for p in active
            for kind, leg in p.legs.items()
            if leg.remote is not None
        ]
        try:
            results = await asyncio.gather(
                *(
                    # Counted from now: a leg that sat idle while the mixer sent it silence
                    # already holds more than `want`, and would not wait for the tones.
                    leg.wait_for_packets(leg.received + want, seconds + self.target.timeouts.media)
                    for _, _, leg in waiting
                ),
                return_exceptions=True,
            )
            # A leg that fell short is not an error of the exchange (a conference that stopped
            # is what some checks look for), but it is reported, never swallowed.
            for (name, kind, _), exc in zip(waiting, results, strict=True):
                if isinstance(exc, BaseException):
                    text = f"media fell short: {name}'s {kind} leg: {exc}"
                    self.notes.append({"text": text, "severity": "info"})
            for exc in results:
                if isinstance(exc, BaseException) and not isinstance(exc, ConfsecError):
                    raise exc  # a bug of the suite, not a quiet target
        finally:
            for p in active:
                p.stop_media()
            self.last_exchange_sent = {
                p.name: sum(leg.sent for leg in p.legs.values()) - sent_before[p.name]
                for p in active
            }

    async def _close(self) -> None:
        """Stop media and leave with BYE, all at once: otherwise the reference keeps mixing for
        the legs of a finished scenario for the rest of the run, and leaving one by one would
        make it rekey the others once per leaver."""
        for p in self.participants.values():
            p.stop_media()
        live = [
            p.dialog
            for p in self.participants.values()
            if p.dialog is not None and not p.dialog.is_terminated
        ]
        await asyncio.gather(*(d.bye(timeout=5) for d in live), return_exceptions=True)
        for p in self.participants.values():
            try:
                await p.close()
            except Exception:
                pass
        for ua in self._extra_uas:
            try:
                await ua.close()
            except Exception:
                pass
