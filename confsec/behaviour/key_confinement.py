"""The conference whose every message is searched for media keys (R3, R5, O4): driving it and
collecting what the target sent.

`KeyConfinement` is the per-scenario face of the steps. It takes the conference through what a
real one goes through, each part where the target claims it: creation and joins (the shared
steps), media, a join that rekeys the others (RFC 4568 keys in re-INVITEs, R6), a subscription
to the conference state (R7), a floor request (R8), a refused join and a request without
credentials, and an OPTIONS and a SUBSCRIBE on every plain listener the profile declares. Then
it gathers every message the target sent to any party of the suite (every user agent's trace,
every NOTIFY, every BFCP message, whatever a plain listener answered) and hands them, with the
ledger's keys, to the pure search of `confsec.behaviour.key_leaks`.
"""

from __future__ import annotations

from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.events import EventRun
from confsec.behaviour.floor import SECURE, FloorRun
from confsec.behaviour.key_leaks import (
    LeakScan,
    Sighting,
    bfcp_sightings,
    held_keys,
    scan,
    trace_sightings,
)
from confsec.behaviour.membership import Membership
from confsec.behaviour.participant import OfferSpec
from confsec.codec.conference_info import CONTENT_TYPE
from confsec.errors import Inconclusive, PeerTimeout, TransportError
from confsec.media.ledger import key_fingerprint
from confsec.net.ua import UserAgent
from confsec.target.model import Listener

PLAIN = ("udp", "tcp")
PLAIN_PROBE = "a plain-listener probe"


class KeyConfinement:
    """One scenario's conference, driven for the search, and the search's result."""

    def __init__(self, conf: ConferenceRun, events: EventRun, floor: FloorRun) -> None:
        self.conf = conf
        self.events = events
        self.floor = floor
        self.listener_uas: list[UserAgent] = []
        """The probes of plain listeners (kept by the run too, for the SIP ladder)."""
        self.listener_errors: list[str] = []
        self.result: LeakScan | None = None

    def claims(self, capability: str) -> bool:
        return self.conf.target.claims(capability)

    # -- the conference ------------------------------------------------------------------------

    def subscribe(self, name: str) -> None:
        """`name` subscribes to the conference state (and gets its first NOTIFY), if claimed."""
        if self.claims("event_package"):
            self.events.subscribe(name)

    def join_rekeying(self, name: str) -> None:
        """`name` joins with the common stream; waits until the others got their new keys."""
        Membership(self.conf).join(name, OfferSpec(common=True))

    def join_with_floor(self, name: str) -> None:
        """`name` joins offering floor control over TLS, if the target claims floor control."""
        if self.claims("floor_control"):
            self.floor.join(name, SECURE)

    def request_floor(self, name: str) -> None:
        """`name` requests the floor and releases it, if it joined with floor control."""
        if self.claims("floor_control") and name in self.floor.sessions:
            self.floor.request_and_release(name)

    def probe_listeners(self) -> int:
        """An OPTIONS and a SUBSCRIBE to every plain (UDP, TCP) listener the profile declares;
        what comes back stays in each probe's trace. Returns how many listeners were probed."""
        plain = [ln for ln in self.conf.target.listeners if ln.transport in PLAIN]
        for listener in plain:
            t = self.conf.target.timeouts.transaction
            self.conf.runtime.run(self._probe(listener), t * 2 + 5, "probing a plain listener")
        return len(plain)

    async def _probe(self, listener: Listener) -> None:
        target = self.conf.target
        ua = await UserAgent.start(aor=f"sip:probe@{target.domain}", contact_host="127.0.0.1")
        self.listener_uas.append(ua)
        self.conf.keep_ua(ua)
        dest = (listener.transport, listener.host, listener.port)
        # A plain listener is reached with sip: URIs (RFC 3261 26.2.2: sips: requires TLS).
        conference = (self.conf.conference_uri or f"sips:{target.domain}").replace("sips:", "sip:")
        requests = [
            ("OPTIONS", f"sip:{target.domain}", []),
            ("SUBSCRIBE", conference, [("Event", "conference"), ("Accept", CONTENT_TYPE)]),
        ]
        for method, uri, headers in requests:
            try:
                await ua.request(
                    method,
                    uri,
                    dest=dest,
                    headers=headers,
                    authenticate=False,
                    timeout=target.timeouts.transaction,
                )
            except (PeerTimeout, TransportError) as exc:
                self.listener_errors.append(f"{method} to {listener.transport}: {exc}")

    # -- the search ----------------------------------------------------------------------------

    def search(self) -> LeakScan:
        """Everything the target sent, searched for every key of the run's ledger."""
        sightings = self.conf.runtime.run(self._collect(), 30, "collecting what the target sent")
        exported = {
            key_fingerprint(key, salt)
            for p in self.conf.participants.values()
            if p.dtls is not None
            for key, salt in p.dtls.exported
        }
        self.result = scan(sightings, held_keys(self.conf.ledger, exported))
        return self.result

    def scanned(self) -> LeakScan:
        """The search's result (a Then-step after the When-step that searched)."""
        if self.result is None:
            raise Inconclusive("nothing was searched (an earlier step failed)")
        return self.result

    async def _collect(self) -> list[Sighting]:
        """On the suite's loop, so that no trace grows while it is read."""
        probes = {id(ua) for ua in self.listener_uas}
        seen: set[int] = set()
        out: list[Sighting] = []
        for name, ua in self.conf.user_agents():
            if id(ua) in seen:
                continue
            seen.add(id(ua))
            if id(ua) in probes:
                out += trace_sightings(PLAIN_PROBE, ua.trace, kind="plain listener")
            else:
                out += trace_sightings(name, ua.trace)
        for sub in self.events.subscriptions.values():  # subscribers with a UA of their own
            if id(sub.ua) not in seen:
                seen.add(id(sub.ua))
                out += trace_sightings(sub.subscriber, sub.ua.trace)
        owners = {id(s.client): s.name for s in self.floor.sessions.values() if s.client}
        for client in self.floor.connections():
            who = owners.get(id(client), "a floor control client")
            out += bfcp_sightings(who, list(client.received), secure=client.peer is not None)
        return out
