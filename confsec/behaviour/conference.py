"""One scenario's conference as the suite drives it: participants, calls, probes and media.

`ConferenceRun` is the per-scenario fixture the steps talk to. Its public methods are synchronous
(steps are) and run the asynchronous work on the suite's loop thread with a deadline taken from
the target profile, so a silent system under test ends a step with `PeerTimeout` instead of
hanging it.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path

from confsec.behaviour.participant import OfferSpec, Participant
from confsec.behaviour.rekeying import attach
from confsec.codec.sdp import SdpParseError, SessionDescription, parse_sdp
from confsec.codec.sip import Request, Response, SipStream, parse_name_addr
from confsec.errors import (
    ConfsecError,
    Inconclusive,
    LocalProtocolError,
    PeerTimeout,
    TargetUnreachable,
    TlsVerificationError,
    TransportError,
)
from confsec.media.ledger import KeyStreamLedger
from confsec.media.tone import tone_for
from confsec.net.startup import client_ssl_context, start_ua
from confsec.net.tls import PeerCert, peer_identity
from confsec.net.ua import UserAgent
from confsec.runtime.loop import LoopThread
from confsec.runtime.punctuality import Lateness
from confsec.target.model import Account, InternalInterface, Target

# Tones are fixed by participant name, so that "alice's tone" is the same in every scenario.
INTERFACE_CLOSE_WATCH_S = 2.0
"""How long a TLS connection to an internal key interface is watched for a refusal (a close)."""
PARTICIPANT_ORDER = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")

__all__ = ["CallOutcome", "ConferenceRun", "OfferSpec", "TlsProbe"]


@dataclass
class CallOutcome:
    """What became of one INVITE: the final response, or why there was none."""

    participant: str
    request_uri: str
    status: int | None = None
    reason: str = ""
    response: Response | None = None
    answer: SessionDescription | None = None
    error: str | None = None


@dataclass
class TlsProbe:
    """A TLS connection attempt to the service, and what came of it."""

    connect_error: str | None = None
    handshake_ok: bool = False
    tls_error: str | None = None
    peer: PeerCert | None = None
    response_status: int | None = None
    closed_by_peer: bool = False
    cert_rejected: bool = False
    """The handshake failed because the suite rejected the peer's certificate (not an alert)."""
    alert: str | None = None
    """The handshake ended in a TLS alert from the peer. The client verifies the server's
    certificate before it sends its own flight, so an alert means the peer speaks TLS with a
    certificate the suite accepted, and refused something of ours (e.g. our certificate)."""
    identity_error: str | None = None
    """The peer's certificate could not be read after the handshake (not a close by itself)."""

    @property
    def server_verified(self) -> bool:
        """The peer presented a certificate valid for its name, whatever it made of ours."""
        return self.handshake_ok or self.alert is not None


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

    def create(self, name: str, offer: OfferSpec, credentials: str = "valid") -> CallOutcome:
        """INVITE the factory URI (RFC 4579 5.1). `credentials`: 'valid', 'none' or 'wrong'."""
        out = self._run(self._invite(name, self.target.factory_uri, offer, credentials))
        if out.status is not None and 200 <= out.status < 300:
            self.creation = out
            contact = out.response.headers.get("Contact") if out.response else None
            self.conference_uri = parse_name_addr(contact).uri if contact else None
        elif self.creation is None:
            self.creation = out
        return out

    def join(self, name: str, offer: OfferSpec) -> CallOutcome:
        if self.conference_uri is None:
            raise Inconclusive(f"{name} cannot join: no conference was created")
        return self._run(self._invite(name, self.conference_uri, offer, "valid"))

    def replay_authorization(self, attacker: str, victim: str) -> CallOutcome:
        """Send a new INVITE that carries the victim's earlier Authorization verbatim."""
        p = self.participant(victim)
        auth = p.ua.last_authorization
        if auth is None:
            raise Inconclusive(f"{victim} never sent an Authorization header to replay")
        return self._run(self._replay(attacker, p, auth))

    def probe_tls(
        self, name: str, *, client_cert: bool = True, send_request: bool = False
    ) -> TlsProbe:
        account = self.target.accounts.get(name) if client_cert else None
        probe = self._run(self._probe(account, send_request), what="TLS probe")
        self.last_probe = probe
        return probe

    def probe_interfaces(self, client: str) -> dict[str, TlsProbe]:
        """TLS to every internal key interface the capability statement names (O1, O6).

        `client` is who the suite claims to be: "none" (no client certificate: what the server
        presents is judged, and whether it refuses an anonymous peer) or "participant" (a
        participant's valid certificate, which only the AS's interface partner may replace).
        A refusal may come as an alert in the handshake (TLS 1.2) or as a close right after it
        (TLS 1.3), so the suite watches for a close either way: the verdict must not depend on
        the TLS version.
        """
        account = next(iter(self.target.accounts.values()), None) if client != "none" else None
        self.interface_probes = {
            i.name: self._run(
                self._probe(account, False, where=i, await_close=INTERFACE_CLOSE_WATCH_S),
                what=f"TLS probe of {i.name}",
            )
            for i in self.target.capabilities.internal_interfaces
        }
        return self.interface_probes

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
        from confsec.behaviour.checks import ledger_observations

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
        tones = {n: tone_for(i) for i, n in enumerate(PARTICIPANT_ORDER)}
        if name not in tones:  # guests of large conferences: the next free tone each
            extra = sum(1 for n in self.participants if n not in PARTICIPANT_ORDER)
            tones[name] = tone_for(len(PARTICIPANT_ORDER) + extra)
        p = Participant(name, account, self.target, ua, self.ledger, tones[name], all_tones={})
        self.participants[name] = p
        for q in self.participants.values():
            q.all_tones = {n: o.tone_hz for n, o in self.participants.items()}
        return p

    async def _invite(self, name: str, uri: str, spec: OfferSpec, credentials: str) -> CallOutcome:
        p = await self._participant(name, credentials)
        out = CallOutcome(name, uri)
        sdp = await p.build_offer(spec)
        try:
            call = await p.ua.invite(
                uri,
                sdp,
                dest=self.target.dest,
                authenticate=credentials != "none",
                timeout=self.target.timeouts.transaction,
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
            if out.status is not None and 200 <= out.status < 300 and out.answer is not None:
                p.apply_answer(out.answer)
                attach(p, call.dialog, out.answer)  # dialog for BYE and rekeys (R6)
        self.outcomes[name] = out
        self.last_outcome = out
        if out.status is None or not 200 <= out.status < 300:
            await p.close_media()
        return out

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

    async def _probe(
        self,
        account: Account | None,
        send_request: bool,
        *,
        where: InternalInterface | None = None,
        await_close: float = 0.0,
    ) -> TlsProbe:
        """Open TLS to the service (or to the internal interface `where`) and see what happens.

        `send_request` sends an OPTIONS and reads the answer; `await_close` reads for that long
        to see whether the peer closes, which is how TLS 1.3 shows a refused client certificate.
        """
        probe = TlsProbe()
        ctx: ssl.SSLContext = client_ssl_context(self.target, account, self.keylog)
        t = self.target.timeouts
        host, port, name = (
            (where.host, where.port, where.server_name)
            if where is not None
            else (self.target.host, self.target.port, self.target.domain)
        )
        if where is not None:
            # An interface that is not TLS at all resets or stalls the handshake: reach it over
            # plain TCP first, so that such a failure is judged as "not TLS", not "unreachable".
            try:
                _, raw = await asyncio.wait_for(asyncio.open_connection(host, port), t.connect)
                raw.close()
            except (OSError, TimeoutError) as exc:
                probe.connect_error = str(exc) or type(exc).__name__
                return probe
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=ctx, server_hostname=name),
                t.connect,
            )
        except ssl.SSLError as exc:
            probe.tls_error = getattr(exc, "verify_message", None) or exc.reason or str(exc)
            probe.cert_rejected = isinstance(exc, ssl.SSLCertVerificationError)
            if not probe.cert_rejected and "ALERT" in (exc.reason or "").upper():
                probe.alert = exc.reason
            return probe
        except (OSError, TimeoutError) as exc:
            if where is None:
                probe.connect_error = str(exc) or type(exc).__name__
            else:
                probe.tls_error = f"no TLS handshake ({type(exc).__name__}: {exc})"
            return probe
        probe.handshake_ok = True
        sslobj = writer.get_extra_info("ssl_object")
        try:
            # The peer may already have closed (a refused client certificate): no identity then.
            probe.peer = peer_identity(sslobj) if sslobj is not None else None
        except (ValueError, OSError, ssl.SSLError, LocalProtocolError) as exc:
            # LocalProtocolError: the session is gone before its certificate could be read
            # (kamailio's alert for a missing client certificate can be that quick). That is
            # no close by itself: the read below, or the request, shows what the peer did.
            probe.identity_error = str(exc) or type(exc).__name__
        try:
            if await_close:
                watched = asyncio.get_running_loop().time()
                try:
                    probe.closed_by_peer = not await asyncio.wait_for(reader.read(1), await_close)
                finally:
                    # Watching for the close is waiting on the peer, up to the window.
                    elapsed = asyncio.get_running_loop().time() - watched
                    self.count_window("close_watch", min(elapsed, await_close))
            if send_request:
                writer.write(_options_request(self.target))
                await writer.drain()
                stream = SipStream()
                while True:
                    data = await asyncio.wait_for(reader.read(65536), t.transaction)
                    if not data:
                        probe.closed_by_peer = True
                        break
                    stream.feed(data)
                    msg = stream.next_message()
                    if isinstance(msg, Response):
                        probe.response_status = msg.status
                        break
        except (ssl.SSLError, ConnectionError) as exc:
            probe.closed_by_peer = True
            probe.tls_error = str(exc)
        except TimeoutError:
            pass
        finally:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            except (OSError, ssl.SSLError, TimeoutError):
                pass
        return probe

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


def _options_request(target: Target) -> bytes:
    """An OPTIONS for the raw TLS probe, built with the codec (no UA: the probe watches TLS)."""
    return Request(
        "OPTIONS",
        target.factory_uri,
        [
            ("Via", f"SIP/2.0/TLS 127.0.0.1:9;branch=z9hG4bK{secrets.token_hex(8)};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sips:probe@{target.domain}>;tag={secrets.token_hex(4)}"),
            ("To", f"<{target.factory_uri}>"),
            ("Call-ID", f"{secrets.token_hex(8)}@confsec"),
            ("CSeq", "1 OPTIONS"),
        ],
    ).to_bytes()
