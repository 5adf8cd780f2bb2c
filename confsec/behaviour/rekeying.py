"""Rekeying (R6), group keys (R5) and conference size (O2), as the suite drives and judges them.

What the suite does. A participant answers the focus's re-INVITE (`dialog_handler`): the offered
`a=crypto` of each stream becomes a new SRTP receiver (the previous one stays as a fallback for
packets still in flight), and it answers with fresh keys for every stream it sends, switching its
running sender at once. `Membership` drives joins, leaves and bursts while every participant
keeps sending, and records when each event happened on the suite's clock.

What the suite judges, always by decryption of packets it actually received (each leg keeps its
last packets, `MediaLeg.recent`), never by trusting the signalling:

* forward security: after a leave, no packet that reached a remaining participant once its rekey
  took effect authenticates under any key the leaver ever held;
* backward security: no packet received before a join authenticates under any key the joiner
  got;
* freshness: no master key or salt a participant gets repeats one it (or anyone, for unicast
  streams) had before;
* completeness: after the event every stream of every remaining participant changed key, and the
  new key was seen in use; the delay from the event to that first packet is the rekey latency.

Keys come from the run's key-stream ledger (the only record of keys); trial decryption uses SRTP
receivers from the one factory, on a throw-away ledger so that trials are not taken for streams.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from confsec.codec.sdp import (
    CryptoAttribute,
    MediaDescription,
    SdpParseError,
    SessionDescription,
    parse_sdp,
)
from confsec.errors import Inconclusive, NonConformance, NotApplicable
from confsec.media.endpoint import MediaLeg
from confsec.media.ledger import KeyStreamLedger, StreamId, key_fingerprint
from confsec.media.srtp import new_receiver, new_sender
from confsec.observed import Evidence
from confsec.runtime.punctuality import Lateness, judge_late

if TYPE_CHECKING:
    from confsec.behaviour.conference import ConferenceRun
    from confsec.behaviour.participant import OfferSpec, Participant
    from confsec.net.dialog import Dialog
    from confsec.net.ua import IncomingRequest

COMMON = "common"
REKEY_MARGIN_S = 1.0
"""What the suite adds to the target's declared rekey deadline (`Capabilities.rekey_deadline_s`)
before it judges that a stream was not rekeyed: whether a rekey happened must not hang on how
punctual the suite was. A participant that got no re-INVITE at all is a finding only if the
suite's measured lateness fits in the time it watched past the declared deadline; otherwise the
judgement is inconclusive (see `rekeyed_completely` and confsec.runtime.punctuality)."""
STARVATION_GRACE_S = 5.0
"""The most the wait for rekeys is extended beyond the declared deadline and margin (plus the
deadline once more) to make up for time the suite or the reference spent starved."""
RECHECK_S = 0.25
"""How often a wait that is still short of rekeys re-reads the suite's lateness."""
PACKETS_PER_SECOND = 50

Key = tuple[str, bytes, bytes]  # (suite, master key, master salt)


# -- SDP helpers shared with participant.py -----------------------------------------------------


def stream_kind(m: MediaDescription) -> str:
    """Which leg of a participant an m-line belongs to: 'common' for `a=label:common`."""
    return COMMON if any(n == "label" and v == COMMON for n, v in m.attributes) else m.media


def stream_label(m: MediaDescription) -> str:
    return COMMON if stream_kind(m) == COMMON else ""


async def common_offer_line(p: Participant, suite: str) -> MediaDescription:
    """Open the common-stream leg and offer it receive-only (RFC 4568: our key here is never
    used, since we send nothing on it; the answer's key is the group key)."""
    from confsec.behaviour.participant import RECENT_PACKETS

    leg = await MediaLeg.open(host="127.0.0.1", port=0, recent_limit=RECENT_PACKETS)
    p.legs[COMMON] = leg
    crypto = CryptoAttribute.generate(len(p.legs), suite)
    return MediaDescription.build(
        "audio",
        port=leg.local_addr[1],
        proto="RTP/SAVP",
        formats=["0"],
        attributes=[("crypto", crypto.to_value()), ("recvonly", None), ("label", COMMON)],
    )


# -- the participant's side of a rekey ----------------------------------------------------------


@dataclass
class RekeyRecord:
    """One set of keys a participant got from the focus: at admission, or by re-INVITE."""

    epoch: int
    """1 for the keys of the 200 OK, then 2, 3... per re-INVITE (the participant's count)."""
    at: float
    """Loop time the keys arrived."""
    recv_keys: dict[str, Key] = field(default_factory=dict)
    """Per leg ('audio', 'video', 'common'): the key the focus sends with."""
    changed: tuple[str, ...] = ()
    """Legs whose receive key differs from the one before."""


def attach(p: Participant, dialog: Dialog | None, answer: SessionDescription) -> None:
    """After admission: remember the dialog and the first keys, and answer later re-INVITEs."""
    p.dialog = dialog
    record = RekeyRecord(1, asyncio.get_running_loop().time())
    for m in answer.media:
        crypto = _crypto(m)
        if crypto is not None and m.port != 0:
            record.recv_keys[stream_kind(m)] = (crypto.suite, crypto.key, crypto.salt)
    record.changed = tuple(record.recv_keys)
    p.rekeys.append(record)
    if dialog is not None:
        dialog.on_request = dialog_handler(p)


def dialog_handler(p: Participant):
    async def handler(req: IncomingRequest) -> None:
        method = req.method
        if method == "INVITE" and req.request.body:
            try:
                offer = parse_sdp(req.request.body)
            except SdpParseError:
                await req.respond(488, "Bad SDP")
                return
            answer = take_rekey(p, offer)
            await req.respond(200, body=answer.to_bytes(), content_type="application/sdp")
        elif method == "INVITE":
            await req.respond(488)
        elif method in ("BYE", "OPTIONS", "NOTIFY", "INFO", "UPDATE"):
            await req.respond(200)
        else:
            await req.respond(405)

    return handler


def take_rekey(p: Participant, offer: SessionDescription) -> SessionDescription:
    """Install the focus's new keys and answer with fresh keys for everything we send."""
    now = asyncio.get_running_loop().time()
    previous = p.rekeys[-1].recv_keys if p.rekeys else {}
    record = RekeyRecord(len(p.rekeys) + 1, now)
    label = f"epoch-{record.epoch}"
    changed = []
    media = []
    for m in offer.media:
        kind = stream_kind(m)
        leg = p.legs.get(kind)
        crypto = _crypto(m)
        if leg is None or m.port == 0 or crypto is None:
            media.append(MediaDescription.build(m.media, port=0, proto=m.proto, formats=m.formats))
            continue
        leg.set_remote((m.connection_address or p.target.host, m.port))
        key = (crypto.suite, crypto.key, crypto.salt)
        record.recv_keys[kind] = key
        if previous.get(kind) != key:
            changed.append(kind)
            sid = StreamId(p.name, "focus", m.media, "recv", f"{stream_label(m)} {label}".strip())
            leg.set_receiver(new_receiver(p.ledger, sid, *key), keep_previous=True)
        mine = CryptoAttribute.generate(crypto.tag, crypto.suite)
        attrs: list[tuple[str, str | None]] = [("crypto", mine.to_value())]
        if kind == COMMON:
            attrs += [("recvonly", None), ("label", COMMON)]
        else:
            sender = new_sender(
                p.ledger,
                StreamId(p.name, "focus", m.media, "send", label),
                mine.suite,
                mine.key,
                mine.salt,
            )
            leg.replace_sender(sender)
            p.send_crypto[kind] = mine
            attrs += [("sendrecv", None), ("ssrc", f"{p.ssrcs[kind]} cname:{p.name}@confsec")]
        media.append(
            MediaDescription.build(
                m.media, port=leg.local_addr[1], proto=m.proto, formats=m.formats, attributes=attrs
            )
        )
    record.changed = tuple(changed)
    p.rekeys.append(record)
    p.rekey_arrived.set()
    return SessionDescription.build(p.name, "127.0.0.1", media=media)


def _crypto(m: MediaDescription) -> CryptoAttribute | None:
    try:
        return next((c for c in m.crypto if not c.is_null and c.is_known), None)
    except Exception:  # a malformed a=crypto: treated as none, the checks will say so
        return None


# -- driving joins and leaves -------------------------------------------------------------------


@dataclass
class MembershipEvent:
    kind: str
    """'join' or 'leave'."""
    name: str
    started: float
    """Loop time the INVITE or BYE was sent."""
    done: float
    """Loop time its 200 OK arrived: the trigger of the rekey latency."""
    settled: float = 0.0
    """When every remaining participant had its re-INVITE, or the deadline passed."""


class Membership:
    """Joins, leaves and bursts of one scenario's conference, with continuous media."""

    def __init__(self, conf: ConferenceRun):
        self.conf = conf
        self.events: list[MembershipEvent] = []
        self.sending = False
        self.latencies: dict[str, float] = {}
        self.latency_event: MembershipEvent | None = None
        """The event the latencies count from."""
        self.lateness: Lateness | None = None
        """The suite's own lateness over the last completeness judgement's window."""

    # sync faces for the steps

    def create_of_size(self, size: int, spec: OfferSpec) -> list[str]:
        names = participant_names(size)
        self.conf.create(names[0], spec)
        if self.conf.conference_uri is None:
            raise Inconclusive("the conference could not be created")
        self._run(self._join_all(names[1:], spec), 30 + size, "joining the conference")
        missing = [n for n in names if self.conf.participants.get(n) is None or not _in(n, self)]
        if missing:
            raise Inconclusive(f"{', '.join(missing)} could not join: nothing to judge")
        return names

    def start_media(self) -> None:
        self._run(self._start(), 10, "starting media")

    def join(self, name: str, spec: OfferSpec) -> MembershipEvent:
        return self.burst([name], [], spec)[0]

    def leave(self, name: str) -> MembershipEvent:
        return self.burst([], [name])[0]

    def burst(
        self, joins: list[str], leaves: list[str], spec: OfferSpec | None = None
    ) -> list[MembershipEvent]:
        """Joins and leaves all at once (one burst), then wait for the rekeys to settle."""
        if self.conf.conference_uri is None:
            raise Inconclusive("no conference was created")
        t = self.conf.target
        timeout = t.timeouts.transaction * 2 + t.capabilities.rekey_deadline_s + REKEY_MARGIN_S + 10
        return self._run(self._burst(joins, leaves, spec), timeout, "joins and leaves")

    def receive(self, seconds: float) -> None:
        """Wait until every remaining participant's every leg got `seconds` more of media."""
        self.conf.count_window("media", seconds)
        self._run(self._receive(seconds), seconds + self.conf.target.timeouts.media + 5, "media")

    def remaining(self) -> list[Participant]:
        return [p for p in self.conf.participants.values() if _live(p)]

    def last(self, kind: str) -> MembershipEvent:
        for e in reversed(self.events):
            if e.kind == kind:
                return e
        raise Inconclusive(f"no {kind} happened in this scenario")

    def _run(self, coro, timeout: float, what: str):
        return self.conf.runtime.run(coro, timeout, what)

    # async work

    async def _join_all(self, names: list[str], spec: OfferSpec) -> None:
        assert self.conf.conference_uri is not None
        uri = self.conf.conference_uri
        await asyncio.gather(*(self.conf._invite(n, uri, spec, "valid") for n in names))

    async def _start(self) -> None:
        self.sending = True
        for p in self.remaining():
            p.start_media()

    async def _burst(
        self, joins: list[str], leaves: list[str], spec: OfferSpec | None
    ) -> list[MembershipEvent]:
        from confsec.behaviour.participant import OfferSpec

        spec = spec or OfferSpec(common=True)
        loop = asyncio.get_running_loop()
        before = {p.name: len(p.rekeys) for p in self.remaining()}
        jobs = [self._one_join(n, spec) for n in joins] + [self._one_leave(n) for n in leaves]
        events = list(await asyncio.gather(*jobs))
        # Settle: every participant that stays and was there before got a re-INVITE after the
        # last event, or the deadline passed (a target that does not rekey is judged on that).
        window = self.conf.target.capabilities.rekey_batching_window_s
        self.conf.count_window("rekey_batching", window)  # the target waits this long by design
        declared = self.conf.target.capabilities.rekey_deadline_s
        base = max(e.done for e in events) + window + declared + REKEY_MARGIN_S
        # Time the suite or the embedded reference spent starved is added to the wait (up to a
        # cap): the target gets its declared deadline in time it could actually use.
        cap = base + declared + STARVATION_GRACE_S
        punctuality = self.conf.runtime.punctuality
        first = min(e.started for e in events)
        # The focus may rekey before the suite has read the BYE's (or INVITE's) 200 OK, which
        # comes on another connection: keys count from when the request was sent.
        last = max(e.started for e in events)
        while True:
            deadline = min(cap, base + punctuality.during(first).slack_s)
            if (left := deadline - loop.time()) <= 0:
                break
            pending = [
                p
                for p in self.remaining()
                if p.name in before and not any(r.at >= last for r in p.rekeys[before[p.name] :])
            ]
            if not pending:
                break
            for p in pending:  # no await since `pending` was taken: no rekey slips through
                p.rekey_arrived.clear()
            waits = [asyncio.ensure_future(p.rekey_arrived.wait()) for p in pending]
            _, rest = await asyncio.wait(
                waits, timeout=min(left, RECHECK_S), return_when=asyncio.FIRST_COMPLETED
            )
            for w in rest:
                w.cancel()
        settled = loop.time()
        for e in events:
            e.settled = settled
        self.events += events
        return events

    async def _one_join(self, name: str, spec: OfferSpec) -> MembershipEvent:
        loop = asyncio.get_running_loop()
        assert self.conf.conference_uri is not None
        started = loop.time()
        out = await self.conf._invite(name, self.conf.conference_uri, spec, "valid")
        done = loop.time()
        if out.status is None or not 200 <= out.status < 300:
            raise Inconclusive(f"{name} could not join: {out.status} {out.reason} {out.error}")
        if self.sending:
            self.conf.participants[name].start_media()
        return MembershipEvent("join", name, started, done)

    async def _one_leave(self, name: str) -> MembershipEvent:
        loop = asyncio.get_running_loop()
        p = self.conf.participant(name)
        if p.dialog is None:
            raise Inconclusive(f"{name} has no dialog with the focus to leave")
        started = loop.time()
        p.stop_media()
        await p.dialog.bye(timeout=self.conf.target.timeouts.transaction)
        done = loop.time()
        for leg in p.legs.values():
            leg.close()  # keeps the leaver's keys in the ledger; its sockets are gone
        return MembershipEvent("leave", name, started, done)

    async def _receive(self, seconds: float) -> None:
        want = max(1, int(seconds * PACKETS_PER_SECOND))
        legs = [leg for p in self.remaining() for leg in p.legs.values() if leg.remote]
        if not legs:
            raise Inconclusive("no participant remains to receive media")
        timeout = seconds + self.conf.target.timeouts.media
        await asyncio.gather(*(leg.wait_for_packets(leg.received + want, timeout) for leg in legs))


def participant_names(size: int) -> list[str]:
    """alice, bob, ... heidi, then guest09, guest10...: accounts the reference provides."""
    from confsec.behaviour.conference import PARTICIPANT_ORDER

    names = list(PARTICIPANT_ORDER[:size])
    names += [f"guest{n:02d}" for n in range(len(names) + 1, size + 1)]
    return names


def _live(p: Participant) -> bool:
    return p.dialog is not None and not p.dialog.is_terminated and bool(p.legs)


def _in(name: str, m: Membership) -> bool:
    return _live(m.conf.participants[name])


# -- judging by decryption ----------------------------------------------------------------------


def held_keys(ledger: KeyStreamLedger, name: str, direction: str | None = None) -> list[Key]:
    """Every (suite, key, salt) the ledger shows `name` holding (sending and/or receiving)."""
    arrow = {"send": " -> ", "recv": " <- ", None: ""}[direction]
    out: list[Key] = []
    for row in ledger.keys_for_evidence():
        stream = str(row["stream"])
        if stream.startswith(name + " ") and arrow in stream:
            key = (str(row["suite"]), bytes(row["key"]), bytes(row["salt"]))  # type: ignore[arg-type]
            if key not in out:
                out.append(key)
    return out


def authenticating(packets: list[bytes], keys: list[Key]) -> dict[str, int]:
    """For each key (by fingerprint) how many of `packets` authenticate under it."""
    hits: dict[str, int] = {}
    scratch = KeyStreamLedger()
    for n, (suite, key, salt) in enumerate(keys):
        rx = new_receiver(
            scratch, StreamId("trial", "-", "audio", "recv", str(n)), suite, key, salt
        )
        ok = sum(1 for data in packets if rx.try_unprotect(data) is not None)
        if ok:
            hits[key_fingerprint(key, salt)] = ok
    return hits


def _recent(leg: MediaLeg) -> list[tuple[float, object, bytes]]:
    """A copy of the leg's packet history. `list()` copies a deque in one C call, so the
    suite's loop thread, still receiving, cannot mutate it under the step's iteration."""
    return list(leg.recent) if leg.recent is not None else []


def _first_under(leg: MediaLeg, keys: list[Key], after: float) -> float | None:
    """Arrival time of the first packet after `after` that authenticates under one of `keys`."""
    scratch = KeyStreamLedger()
    rxs = [
        new_receiver(scratch, StreamId("trial", "-", "audio", "recv", str(n)), *k)
        for n, k in enumerate(keys)
    ]
    for t, _, data in _recent(leg):
        if t >= after and any(rx.try_unprotect(data) is not None for rx in rxs):
            return t
    return None


def _new_keys(p: Participant, kind: str, after: float) -> list[Key]:
    return [r.recv_keys[kind] for r in p.rekeys if r.at >= after and kind in r.changed]


def forward_security(m: Membership, leaver: str) -> Evidence:
    """R6: after the leave, nothing the remaining participants received (once their rekey took
    effect, or once the rekey deadline passed) authenticates under any key the leaver held."""
    event = _event(m, "leave", leaver)
    keys = held_keys(m.conf.ledger, leaver)
    if not keys:
        raise Inconclusive(f"the ledger holds no key of {leaver}")
    problems, judged = [], 0
    for p in m.remaining():
        for kind, leg in p.legs.items():
            new = _new_keys(p, kind, event.started)
            cut = _first_under(leg, new, event.started) if new else None
            cut = cut if cut is not None else event.settled
            packets = [d for t, _, d in _recent(leg) if t >= cut]
            judged += len(packets)
            hits = authenticating(packets, keys)
            if hits:
                n = sum(hits.values())
                problems.append(
                    f"{n} of {len(packets)} {kind} packets {p.name} received after {leaver} left "
                    f"authenticate under {leaver}'s key(s) {', '.join(sorted(hits))}"
                )
    if problems:
        raise NonConformance("no forward security: " + "; ".join(problems))
    if judged == 0:
        raise Inconclusive(f"no packet was received after {leaver} left: nothing to judge")
    return Evidence.of(packets_judged=judged, leaver_keys_tried=len(keys), packets_opened=0)


def backward_security(m: Membership, joiner: str) -> Evidence:
    """R6: nothing received before the join authenticates under any key the joiner got."""
    event = _event(m, "join", joiner)
    keys = held_keys(m.conf.ledger, joiner, "recv")
    if not keys:
        raise Inconclusive(f"the ledger holds no key {joiner} received")
    problems, judged = [], 0
    for p in m.conf.participants.values():
        if p.name == joiner:
            continue
        for kind, leg in p.legs.items():
            packets = [d for t, _, d in _recent(leg) if t < event.started]
            judged += len(packets)
            hits = authenticating(packets, keys)
            if hits:
                problems.append(
                    f"{sum(hits.values())} of {len(packets)} {kind} packets {p.name} received "
                    f"before {joiner} joined authenticate under key(s) {', '.join(sorted(hits))} "
                    f"that {joiner} received"
                )
    if problems:
        raise NonConformance("no backward security: " + "; ".join(problems))
    if judged == 0:
        raise Inconclusive(f"no packet was received before {joiner} joined: nothing to judge")
    return Evidence.of(packets_judged=judged, joiner_keys_tried=len(keys), packets_opened=0)


def keys_fresh(ledger: KeyStreamLedger) -> Evidence:
    """R6 freshness: no master key or salt given to a participant repeats one it held before,
    and no unicast key or salt shows up at two participants (a group key may, by design).
    Judged only once a rekey happened: without new keys there is no freshness to see."""
    rows = ledger.keys_for_evidence()
    if not rows:
        raise Inconclusive("the ledger recorded no keys")
    rekeyed = [r for r in rows if "epoch-" in str(r["stream"])]
    if not rekeyed:
        raise Inconclusive("no rekey happened: no new key to judge the freshness of")
    seen: dict[tuple[str, bytes], str] = {}
    problems = []
    for row in rows:
        stream = str(row["stream"])
        owner = stream.split(" ", 1)[0]
        common = COMMON in stream.split("[", 1)[-1] if "[" in stream else False
        for what in ("key", "salt"):
            value = bytes(row[what])  # type: ignore[arg-type]
            earlier = seen.get((what, value))
            if earlier is not None:
                e_owner = earlier.split(" ", 1)[0]
                e_common = "[" in earlier and COMMON in earlier.split("[", 1)[-1]
                if e_owner == owner or not (common and e_common):
                    problems.append(f"the master {what} of {stream} repeats that of {earlier}")
            else:
                seen[(what, value)] = stream
    if problems:
        raise NonConformance("keys are not fresh: " + "; ".join(sorted(set(problems))[:6]))
    return Evidence.of(keys_compared=len(rows), rekeyed_keys=len(rekeyed), repeats=0)


def rekeyed_completely(m: Membership, kind: str, name: str) -> Evidence:
    """R6 completeness: after the event every stream every remaining participant (present
    before it) receives changed key and the new key carried packets. Returns the rekey latency
    per participant (seconds from the 200 OK of the BYE/INVITE to its last stream's first
    packet under a new key)."""
    event = _event(m, kind, name)
    problems = []
    latencies: dict[str, float] = {}
    streams = 0
    for p in m.remaining():
        if p.name == name or not p.rekeys or p.rekeys[0].at >= event.started:
            continue  # the joiner itself, or someone who came in the same burst
        worst = 0.0
        for leg_kind, leg in p.legs.items():
            if leg.remote is None:
                continue
            new = _new_keys(p, leg_kind, event.started)
            if not new:
                problems.append(f"{p.name}'s {leg_kind} stream was not rekeyed")
                continue
            first = _first_under(leg, new, event.started)
            if first is None:
                problems.append(f"{p.name} received no {leg_kind} packet under its new key")
                continue
            streams += 1
            worst = max(worst, first - event.done, 0.0)
        latencies[p.name] = worst
    m.lateness = m.conf.runtime.punctuality.during(event.started, event.settled)
    if problems:
        caps = m.conf.target.capabilities
        # How long past the declared deadline the suite went on watching: the lateness it
        # measured must fit in it, or it cannot show the target had its declared time. That
        # matters only for a participant that got no rekey at all: one whose re-INVITE came
        # and left a stream on its old key is a finding whatever the clock said.
        declared_end = event.done + caps.rekey_batching_window_s + caps.rekey_deadline_s
        granted = event.settled - declared_end
        unheard = [
            p.name
            for p in m.remaining()
            if p.name != name
            and p.rekeys
            and p.rekeys[0].at < event.started
            and not any(r.at >= event.started for r in p.rekeys)
        ]
        if unheard and m.lateness.slack_s > granted:
            raise Inconclusive(
                f"after {name}'s {kind}, {'; '.join(problems)} when the suite stopped watching "
                f"{granted:.1f} s past the declared {caps.rekey_deadline_s:g} s, but "
                f"{m.lateness.describe()}: more than that, so the suite cannot show the target "
                "had its declared time"
            )
        raise NonConformance(f"incomplete rekey after {name}'s {kind}: " + "; ".join(problems))
    if not latencies:
        raise Inconclusive(f"nobody was in the conference before {name}'s {kind}")
    m.latencies = latencies
    m.latency_event = event
    return Evidence.of(participants=len(latencies), streams_rekeyed=streams)


def latency_summary(latencies: dict[str, float]) -> dict[str, float]:
    values = sorted(latencies.values())
    if not values:
        return {}
    p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
    return {
        "participants": len(values),
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "p99_ms": round(p99 * 1000, 1),
        "max_ms": round(values[-1] * 1000, 1),
    }


def rekey_within_declared(m: Membership) -> Evidence:
    """O2: every remaining participant saw its new keys in use within the latency bound the
    capability statement declares. No requirement bounds the latency, so without a declared
    bound there is nothing to judge (the scenario is tagged @pics:rekey_latency_bound).

    A participant over the bound by no more than the suite's own lateness in that time (its
    loop lag, the embedded reference waiting for a CPU) is not a finding: inconclusive."""
    bound = m.conf.target.capabilities.rekey_latency_bound_s
    if bound is None:
        raise NotApplicable("the capability statement declares no rekey latency bound")
    if not m.latencies or m.latency_event is None:
        raise Inconclusive("no rekey latency was measured")
    slow = {n: v for n, v in m.latencies.items() if v > bound}
    if not slow:
        return Evidence.of(participants_within_bound=len(m.latencies))
    done = m.latency_event.done
    findings, excused = [], []
    for n, v in sorted(slow.items(), key=lambda kv: -kv[1]):
        lateness = m.conf.runtime.punctuality.during(done, done + v)
        why = judge_late(v - bound, lateness)
        (findings if why is None else excused).append((n, v, lateness))
    listed = ", ".join(f"{n} {v * 1000:.0f} ms" for n, v, _ in (findings or excused)[:5])
    if findings:
        raise NonConformance(
            f"{len(findings)} participants took over the declared {bound:g} s: {listed}"
        )
    worst = max(excused, key=lambda e: e[2].slack_s)[2]
    raise Inconclusive(
        f"{len(excused)} participants took over the declared {bound:g} s ({listed}), each by "
        f"less than the suite's own lateness: {worst.describe()}"
    )


def _event(m: Membership, kind: str, name: str) -> MembershipEvent:
    for e in reversed(m.events):
        if e.kind == kind and e.name == name:
            return e
    raise Inconclusive(f"{name} did not {kind} in this scenario")


# -- group keys (R5) ----------------------------------------------------------------------------


def common_stream_decrypted(participants: list[Participant]) -> Evidence:
    """R5: every participant receives the common stream, it authenticates, and it carries
    everyone's tone (the full mix)."""
    problems, silent, packets = [], [], 0
    tones = {p.name: p.tone_hz for p in participants}
    for p in participants:
        leg = p.legs.get(COMMON)
        if leg is None or leg.remote is None:
            raise NonConformance(f"{p.name} was given no common stream although it asked")
        s = leg.stats
        if s.received == 0:
            silent.append(p.name)  # no observation: the target sent nothing to judge
            continue
        packets += s.authenticated
        if s.authenticated == 0:
            problems.append(f"{p.name} could not decrypt the common stream ({s.received} packets)")
            continue
        heard = leg.heard_tones(list(tones.values()))
        missing = [n for n, f in tones.items() if f not in heard]
        if missing:
            problems.append(f"{p.name} does not hear {', '.join(missing)} in the common stream")
    if problems:
        raise NonConformance("; ".join(problems))
    if silent:
        raise Inconclusive(f"{', '.join(silent)} received nothing on the common stream")
    return Evidence.of(listeners=len(participants), packets_authenticated=packets)


def same_group_key(participants: list[Participant]) -> Evidence:
    """R5: all participants hold the same (current) key for the common stream."""
    keys = {}
    for p in participants:
        key = p.rekeys[-1].recv_keys.get(COMMON) if p.rekeys else None
        if key is None:
            raise NonConformance(f"{p.name} received no group key")
        keys[p.name] = key_fingerprint(key[1], key[2])
    if len(set(keys.values())) > 1:
        listed = ", ".join(f"{n}: {fp}" for n, fp in keys.items())
        raise NonConformance(f"the participants hold different common-stream keys ({listed})")
    return Evidence.of(participants=len(keys), group_keys=len(set(keys.values())))


def group_key_distinct(ledger: KeyStreamLedger) -> Evidence:
    """R5: the common stream's key and salt appear in no other (unicast) stream of the ledger."""
    common: dict[bytes, str] = {}
    other: dict[bytes, str] = {}
    for row in ledger.keys_for_evidence():
        stream = str(row["stream"])
        target = common if "[" in stream and COMMON in stream.split("[", 1)[-1] else other
        for what in ("key", "salt"):
            target.setdefault(bytes(row[what]), stream)  # type: ignore[arg-type]
    if not common:
        raise Inconclusive("no common stream key was recorded")
    shared = [f"{common[v]} and {other[v]}" for v in common if v in other]
    if shared:
        raise NonConformance(
            "the common stream shares key material with another stream: " + "; ".join(shared[:4])
        )
    return Evidence.of(group_key_values=len(common), other_key_values=len(other), shared_values=0)


@dataclass
class NonMemberAttempt:
    name: str
    statuses: list[int] = field(default_factory=list)
    keyed: list[str] = field(default_factory=list)
    """Responses that carried an a=crypto key."""


def try_as_non_member(conf: ConferenceRun, name: str, credentials: str) -> NonMemberAttempt:
    """INVITE the conference URI as `name` with 'none' or 'wrong' credentials; keep every
    response (provisional ones too) and note those that carry keys."""
    if conf.conference_uri is None:
        raise Inconclusive("no conference was created")
    return conf.runtime.run(
        _non_member(conf, name, credentials), conf.target.timeouts.transaction * 2, "non-member"
    )


async def _non_member(conf: ConferenceRun, name: str, credentials: str) -> NonMemberAttempt:
    from confsec.behaviour.participant import OfferSpec

    p = await conf._participant(name, credentials)
    attempt = NonMemberAttempt(name)
    sdp = await p.build_offer(OfferSpec(common=True))
    assert conf.conference_uri is not None
    try:
        call = await p.ua.invite(
            conf.conference_uri,
            sdp,
            dest=conf.target.dest,
            authenticate=credentials != "none",
            timeout=conf.target.timeouts.transaction,
        )
    finally:
        await p.close_media()
    for r in call.responses:
        attempt.statuses.append(r.status)
        if b"a=crypto" in r.body:
            attempt.keyed.append(f"{r.status} {r.reason}")
    return attempt


def non_member_got_nothing(attempt: NonMemberAttempt) -> Evidence:
    if attempt.keyed:
        raise NonConformance(
            f"{attempt.name}, not a member, received keys in {', '.join(attempt.keyed)}"
        )
    if any(200 <= s < 300 for s in attempt.statuses):
        raise NonConformance(f"{attempt.name} was admitted without valid credentials")
    if not attempt.statuses:
        raise Inconclusive(f"{attempt.name}'s INVITE got no response")
    return Evidence.of(responses=len(attempt.statuses), keyed_responses=0)
