"""Conferences that call their participants, as the suite drives them (RFC 4579 5.5 and 5.7,
RFC 3515, TS 24.147): participants that can be called, REFER to the focus, and the operator's
adapters where the conference is hosted by something that takes no REFER (a phone that merges
its calls).

`DialOutRun` is the per-scenario face the steps talk to. It wraps the scenario's
`ConferenceRun`: a participant the service called is a participant like any other there (its
legs, keys and rekeys are judged by the same checks), with an `Answering` record of every call
that reached it (confsec.behaviour.answering).

How the target finds a participant it must call comes from the profile (`Target.dial_out_reach`):
the participant REGISTERs its contact with the service, or the contact goes to the adapter
that adds it. How a participant is added comes from the capability statement: by REFER from a
member where the target claims `refer`, else by the `add-participant` adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from confsec.behaviour.answering import Answering, IncomingCall, take_call
from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.membership import Membership, MembershipEvent
from confsec.behaviour.participant import Participant
from confsec.behaviour.rekeying import claimed_offer
from confsec.codec.sip import Request, Response
from confsec.errors import Inconclusive, PeerTimeout, TlsVerificationError, TransportError
from confsec.net.dialog import Dialog
from confsec.net.flow import Flow
from confsec.net.incoming import IncomingRequest
from confsec.net.startup import start_listening_ua, start_ua
from confsec.net.ua import UserAgent
from confsec.target.adapters import perform

__all__ = ["DialOutRun", "ReferOutcome", "Sipfrag"]

NOT_CALLED_WATCH_S = 2.0
"""How long a participant listens, after a refused REFER, before the suite may judge that the
service did not call it (the feature states the window it uses)."""


@dataclass(frozen=True)
class Sipfrag:
    """One NOTIFY of a REFER's implicit subscription that reached the referrer."""

    flow: Flow
    request: Request
    status: int | None
    """The status of the sipfrag body's status line (None: not a sipfrag status line)."""
    state: str


@dataclass
class ReferOutcome:
    """One REFER to the conference URI and what came of it."""

    referrer: str
    target_name: str
    method: str
    ua: UserAgent = field(repr=False)
    since: int
    """Index into `ua.trace` where this REFER began."""
    started: float = 0.0
    call_id: str = ""
    status: int | None = None
    reason: str = ""
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def progress(self) -> list[Sipfrag]:
        """Every NOTIFY of this REFER's subscription that reached the referrer, over any flow
        (a plain one included: that is what the R7 check looks for)."""
        out = []
        for entry in self.ua.trace[self.since :]:
            msg = entry.message
            if entry.direction != "received" or not isinstance(msg, Request):
                continue
            if msg.method != "NOTIFY" or msg.call_id != self.call_id:
                continue
            out.append(
                Sipfrag(
                    entry.flow,
                    msg,
                    _sipfrag_status(msg.body),
                    msg.headers.get("Subscription-State") or "",
                )
            )
        return out

    def final(self) -> Sipfrag | None:
        return next((n for n in self.progress() if n.status is not None and n.status >= 200), None)


class DialOutRun:
    """Participants the service calls, and the requests that make it call them."""

    def __init__(self, conf: ConferenceRun) -> None:
        self.conf = conf
        self.answering: dict[str, Answering] = {}
        self.refers: list[ReferOutcome] = []
        self._uas: list[UserAgent] = []
        self._operated = False
        """The conference was started by the operator's adapter: `close` ends it the same way."""

    def _run(self, coro, timeout: float | None = None, what: str = ""):  # type: ignore[no-untyped-def]
        return self.conf.runtime.run(
            coro, timeout or self.conf.target.timeouts.transaction * 3, what
        )

    # -- sync faces for the steps --------------------------------------------------------------

    def callable(self, name: str, mode: str = "srtp", claim: str | None = None) -> Participant:
        """`name` listens and can be called: it REGISTERs its contact where the target is
        reached that way (or its contact goes to the adapter that adds it)."""
        return self._run(self._callable(name, mode, claim), what=f"making {name} callable")

    def start(self, creator: str) -> None:
        """A secure conference begins with `creator` in it: through the factory URI where the
        target claims it (the creator dials in), else by the operator's `start-conference`
        adapter and the creator called like the others."""
        conf = self.conf
        if conf.target.claims("dial-in-factory"):
            out = conf.create(creator, claimed_offer(conf.target.capabilities))
            if not out.admitted or conf.conference_uri is None:
                raise Inconclusive(
                    f"{creator} could not create a conference: {out.status} {out.reason} "
                    f"{out.error or ''}".strip()
                )
            return
        result = perform(conf.target, "start-conference", creator=creator)
        self._operated = True
        lines = result.output.strip().splitlines()
        conf.conference_uri = lines[-1].strip() if lines else None  # a phone's has none
        if creator not in self.answering:
            self.callable(creator)
        self.add(creator, creator)

    def add(self, referrer: str, invitee: str) -> IncomingCall:
        """`referrer` has the service call `invitee`; returns the call once it was answered
        (Inconclusive if the service never called)."""
        outcome = self._run(self._add(referrer, invitee), what=f"{referrer} adding {invitee}")
        return outcome

    def add_event(self, m: Membership, referrer: str, invitee: str) -> MembershipEvent:
        """`add` as a membership event: the others' rekeys are awaited as after any join."""

        async def job() -> MembershipEvent:
            loop = asyncio.get_running_loop()
            started = loop.time()
            await self._add(referrer, invitee)
            done = loop.time()
            if m.sending:
                self.conf.participants[invitee].start_media()
            return MembershipEvent("join", invitee, started, done)

        return m.happen([job], f"{referrer} adding {invitee}")[0]

    def remove(self, referrer: str, name: str) -> None:
        """`referrer` has the service remove `name`; returns once `name`'s dialog ended (or
        the transaction deadline passed)."""
        self._run(self._remove(referrer, name), what=f"{referrer} removing {name}")

    def remove_event(self, m: Membership, referrer: str, name: str) -> MembershipEvent:
        """`referrer` has the service remove `name` (REFER with method=BYE, or the adapter);
        its legs stay open and watched, as a leaver's that ignores the end would."""

        async def job() -> MembershipEvent:
            loop = asyncio.get_running_loop()
            started = loop.time()
            await self._remove(referrer, name)
            self.conf.departed.add(name)
            return MembershipEvent("leave", name, started, loop.time())

        return m.happen([job], f"{referrer} removing {name}")[0]

    def refer(self, referrer: str, invitee: str, *, credentials: str = "valid") -> ReferOutcome:
        """Send the REFER alone (the R2 checks look at its answer), from `referrer`'s dialog
        UA if it is a participant, else from a fresh UA; `credentials` 'none' sends it with
        `referrer`'s identity and certificate but no answer to a challenge."""
        return self._run(self._refer(referrer, invitee, "INVITE", credentials=credentials))

    def refer_with_plain_contact(self, referrer: str, invitee: str) -> ReferOutcome:
        """A REFER whose Contact names plain UDP (a trap: progress must not go there)."""
        return self._run(self._refer(referrer, invitee, "INVITE", plain_contact=True))

    def await_progress(self, out: ReferOutcome) -> ReferOutcome:
        """Wait (up to the transaction deadline past the call's own) for the final sipfrag."""
        self._run(self._await_final(out), what="waiting for the REFER's progress")
        return out

    def listen(self, name: str, seconds: float) -> list[IncomingCall]:
        """Every call that reached `name`, after listening `seconds` more."""
        self.conf.count_window("call_watch", seconds)
        self._run(asyncio.sleep(seconds), timeout=seconds + 5, what=f"{name} listening")
        return list(self.answering_of(name).calls)

    def answering_of(self, name: str) -> Answering:
        try:
            return self.answering[name]
        except KeyError:
            raise Inconclusive(f"{name} was not made callable in this scenario") from None

    def close(self) -> None:
        if self._operated and "end-conference" in self.conf.target.adapters:
            with contextlib.suppress(Inconclusive):
                conference = self.conf.conference_uri or ""
                perform(self.conf.target, "end-conference", conference=conference)

        async def _close() -> None:
            for ua in self._uas:
                await ua.close()

        try:
            self._run(_close(), timeout=10, what="closing referrers")
        except Exception:
            pass

    # -- async work ----------------------------------------------------------------------------

    async def _callable(self, name: str, mode: str, claim: str | None) -> Participant:
        conf = self.conf
        account = conf.target.account(name)
        answering = Answering(
            mode, conf.target.account(claim).aor(conf.target.domain) if claim else None
        )
        holder: list[Participant] = []

        async def handler(req: IncomingRequest) -> None:
            if req.method == "INVITE" and holder:
                await take_call(holder[0], answering, req)
            elif req.method in ("OPTIONS", "NOTIFY"):
                await req.respond(200)
            else:
                await req.respond(405)

        ua = await start_listening_ua(conf.target, conf.keylog, account, handler)
        p = conf.adopt(name, account, ua)
        holder.append(p)
        self.answering[name] = answering
        if conf.target.dial_out_reach == "register":
            await self._register(p)
        return p

    async def _register(self, p: Participant) -> None:
        t = self.conf.target
        try:
            response = await p.ua.request(
                "REGISTER",
                f"sips:{t.domain}",
                dest=t.dest,
                to=f"<{p.account.aor(t.domain)}>",
                headers=[("Expires", "600")],
                timeout=t.timeouts.transaction,
            )
        except (PeerTimeout, TransportError) as exc:
            raise Inconclusive(f"{p.name} could not register its contact: {exc}") from None
        if not 200 <= response.status < 300:
            raise Inconclusive(
                f"{p.name} could not register its contact: {response.status} {response.reason}"
            )

    async def _add(self, referrer: str, invitee: str) -> IncomingCall:
        answering = self.answering_of(invitee)
        seen = len(answering.calls)
        try:
            await self._ask(referrer, invitee, "INVITE")
        except Inconclusive:
            # The host says it could not add the participant; if it did call, what the
            # participant answered (a refusal, say) is what the checks judge.
            if len(answering.calls) <= seen:
                raise
        return await self._await_call(invitee, seen)

    async def _ask(self, referrer: str, name: str, method: str) -> None:
        """Have the service call `name` (INVITE) or remove it (BYE): by `referrer`'s REFER where
        the target claims REFER, else by the operator's adapter, given `name`'s contact."""
        t = self.conf.target
        if t.claims("refer"):
            out = await self._refer(referrer, name, method)
            if not out.accepted:
                what = "remove" if method == "BYE" else "add"
                raise Inconclusive(
                    f"{referrer}'s REFER to {what} {name} was not accepted: "
                    f"{out.status} {out.reason} {out.error or ''}".strip()
                )
            return
        p = self.conf.participants[name]
        await asyncio.to_thread(
            perform,
            t,
            "remove-participant" if method == "BYE" else "add-participant",
            name=name,
            aor=p.account.aor(t.domain),
            contact=p.ua.contact_for(_tls_flow(p.ua)).strip("<>"),
            conference=self.conf.conference_uri or "",
        )

    async def _await_call(self, invitee: str, seen: int) -> IncomingCall:
        answering = self.answering_of(invitee)
        deadline = asyncio.get_running_loop().time() + self.conf.target.timeouts.transaction * 2
        while len(answering.calls) <= seen:
            answering.called.clear()
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                refused = self.conf.participants[invitee].ua.transport.tls_handshake_errors
                why = f" (its TLS listener refused: {'; '.join(refused[-3:])})" if refused else ""
                raise Inconclusive(f"the service never called {invitee}{why}: nothing to judge")
            try:
                await asyncio.wait_for(answering.called.wait(), min(left, 0.5))
            except TimeoutError:
                continue
        return answering.calls[seen]

    async def _remove(self, referrer: str, name: str) -> None:
        t = self.conf.target
        p = self.conf.participants[name]
        await self._ask(referrer, name, "BYE")
        # Removed: its dialog ends with the service's BYE (awaited, bounded).
        if p.dialog is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(p.dialog.terminated.wait(), t.timeouts.transaction)

    async def _refer(
        self,
        referrer: str,
        name: str,
        method: str,
        *,
        credentials: str = "valid",
        plain_contact: bool = False,
    ) -> ReferOutcome:
        conf = self.conf
        t = conf.target
        if conf.conference_uri is None:
            raise Inconclusive("no conference was created to REFER to")
        p = conf.participants.get(referrer)
        if p is not None and credentials == "valid" and not plain_contact:
            ua = p.ua
        else:
            account = t.account(referrer)
            ua = await start_ua(
                t,
                conf.keylog,
                shown=account,
                cert=account,
                credentials=None if credentials == "none" else (account.username, account.password),
            )
            self._uas.append(ua)
            conf.keep_ua(ua)
        aor = t.account(name).aor(t.domain)
        refer_to = f"<{aor};method=BYE>" if method == "BYE" else f"<{aor}>"
        headers: list[tuple[str, str]] = [("Refer-To", refer_to)]
        if plain_contact:
            host, port = ua.transport.listen_address("udp") or await ua.transport.listen_udp(
                "127.0.0.1", 0
            )
            headers.append(("Contact", f"<sip:{referrer}@{host}:{port};transport=udp>"))
        out = ReferOutcome(referrer, name, method, ua, len(ua.trace))
        out.started = asyncio.get_running_loop().time()
        self.refers.append(out)

        def subscribed(request: Request, response: Response, flow: Flow) -> None:
            # The implicit subscription's dialog (RFC 3515 2.4.4), made as the 2xx is read:
            # its first NOTIFY may come right behind the 202 and is answered 200, not 481.
            dialog = Dialog.uac(ua, request, response, flow, secure=flow.secure)
            ua.dialogs[dialog.id] = dialog

        try:
            ex = await ua.request_exchange(
                "REFER",
                conf.conference_uri,
                dest=t.dest,
                headers=headers,
                authenticate=credentials != "none",
                timeout=t.timeouts.transaction,
                on_2xx=subscribed,
            )
        except TlsVerificationError as exc:
            out.error = f"TLS verification failed: {exc}"
            return out
        except (PeerTimeout, TransportError) as exc:
            out.error = f"no answer to REFER: {exc}"
            return out
        out.call_id = ex.request.call_id
        out.status, out.reason = ex.response.status, ex.response.reason
        return out

    async def _await_final(self, out: ReferOutcome) -> None:
        deadline = asyncio.get_running_loop().time() + self.conf.target.timeouts.transaction * 2
        while out.accepted and out.final() is None:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            mark = len(out.ua.trace)
            try:
                await out.ua.wait_for(
                    lambda e: isinstance(e.message, Request) and e.message.method == "NOTIFY",
                    left,
                    since=mark,
                )
            except PeerTimeout:
                return


def _tls_flow(ua: UserAgent) -> Flow:
    """A stand-in TLS flow from our listening address: what `contact_for` names for TLS."""
    _, host, port = ua.address("tls")
    return Flow("tls", (host, port), (host, port))


def _sipfrag_status(body: bytes) -> int | None:
    """The status code of a `message/sipfrag` status line ('SIP/2.0 200 OK')."""
    line = body.split(b"\r\n", 1)[0].split(b"\n", 1)[0].decode("utf-8", "replace").split()
    if len(line) >= 2 and line[0].upper().startswith("SIP/") and line[1].isdigit():
        return int(line[1])
    return None


def names_of(text: str) -> Sequence[str]:
    """'bob and carol', 'bob, carol and dave' -> the names."""
    return [n.strip() for n in text.replace(" and ", ",").split(",") if n.strip()]
