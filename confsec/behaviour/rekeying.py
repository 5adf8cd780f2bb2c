"""Rekeying on join and leave (R6) and its latency (O2), as the suite judges them.

The participants answer the rekeys (confsec.behaviour.participant) and `Membership` drives the
joins and leaves (confsec.behaviour.membership). This module judges, always by decryption of
packets the suite actually received (each leg keeps its last packets, `MediaLeg.recent`), never
by trusting the signalling:

* forward security: after a leave, no packet that reached a remaining participant once its rekey
  took effect authenticates under any key the leaver ever held;
* backward security: no packet received before a join authenticates under any key the joiner
  got;
* freshness: no master key or salt a participant gets repeats one it (or anyone, for unicast
  streams) had before;
* completeness: after the event every stream of every remaining participant changed key, and the
  new key was seen in use; the delay from the event to that first packet is the rekey latency.

Each judgement can be made for one medium (`MEDIA`: the audio and video legs and the group-keyed
common stream) on packets of that medium alone, so that a target that rekeys one kind of stream
and not another fails on the stream it left behind (the clause asks for *all* key streams to be
based on new key material). A medium the capability statement does not claim is not applicable;
one that carried no packet to judge is inconclusive, never a pass.

Keys come from the run's key-stream ledger (the only record of keys); trial decryption uses SRTP
receivers from the one factory, on a throw-away ledger so that trials are not taken for streams.
"""

from __future__ import annotations

import statistics

from confsec.behaviour.membership import Membership
from confsec.behaviour.participant import COMMON, Key, OfferSpec, Participant
from confsec.errors import Inconclusive, NonConformance, NotApplicable
from confsec.media.endpoint import MediaLeg
from confsec.media.ledger import KeyStreamLedger, StreamId, key_fingerprint
from confsec.media.srtp import SrtpReceiver, new_receiver
from confsec.observed import Evidence
from confsec.runtime.punctuality import judge_late
from confsec.target.model import Capabilities

MEDIA = ("audio", "video", COMMON)
"""The kinds of stream R6 judges one by one: a participant's own audio and video legs, and the
common stream (the mix under the group key, R5)."""


OWN_KEYS_CONTROL = "the judged packets open under keys their receivers were given"
"""The positive control of forward and backward security: packets that open under no key at
all would pass any 'opens under none of these keys' test."""


def claimed_media(caps: Capabilities) -> tuple[str, ...]:
    """The media the target claims, in `MEDIA` order: audio always, video and the common stream
    where the capability statement claims them."""
    claimed = {"audio": True, "video": caps.video, COMMON: caps.group_keys}
    return tuple(k for k in MEDIA if claimed[k])


def claimed_offer(caps: Capabilities) -> OfferSpec:
    """An offer of every stream the target claims: R6 is judged on each of them."""
    media = tuple(k for k in claimed_media(caps) if k != COMMON)
    return OfferSpec(media=media, common=COMMON in claimed_media(caps))


def stream_medium(stream: str) -> str:
    """The medium of a ledger stream: 'bob <- focus audio [common epoch-2]' is the common
    stream (an audio m-line labelled common), 'bob <- focus video [epoch-2]' is video."""
    head, _, label = stream.partition(" [")
    return COMMON if COMMON in label.rstrip("]").split() else head.split()[-1]


def _claimed(m: Membership, medium: str | None) -> None:
    """NotApplicable unless the target claims `medium` (None: every stream, nothing to claim)."""
    if medium is None:
        return
    if medium not in MEDIA:
        raise ValueError(f"unknown medium {medium!r}: one of {', '.join(MEDIA)}")
    if medium not in claimed_media(m.conf.target.capabilities):
        what = "group keys (the common stream)" if medium == COMMON else medium
        raise NotApplicable(f"the capability statement claims no {what}")


def _legs(p: Participant, medium: str | None) -> list[tuple[str, MediaLeg]]:
    """`p`'s legs of `medium` (None: all of them)."""
    return [(k, leg) for k, leg in p.legs.items() if medium is None or k == medium]


def _own_keys(p: Participant, kind: str) -> list[Key]:
    """Every key `p` was given for its `kind` leg (first answer and every rekey)."""
    out: list[Key] = []
    for r in p.rekeys:
        if kind in r.recv_keys and r.recv_keys[kind] not in out:
            out.append(r.recv_keys[kind])
    return out


def _stream_word(medium: str | None) -> str:
    return "" if medium is None else f"{medium} "


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


def is_rtcp(data: bytes) -> bool:
    """RTCP (SRTCP) rather than RTP, by the packet type octet (RFC 5761 4)."""
    return len(data) > 1 and 192 <= data[1] <= 223


def _opens(rx: SrtpReceiver, data: bytes) -> bool:
    """Whether `data` authenticates under `rx`: as SRTCP with SRTCP's session keys, as SRTP
    otherwise, so that a rekey is judged on the control packets too (RFC 3711 4.3.2)."""
    if is_rtcp(data):
        return rx.try_unprotect_rtcp(data) is not None
    return rx.try_unprotect(data) is not None


def _trials(keys: list[Key]) -> list[SrtpReceiver]:
    scratch = KeyStreamLedger()
    return [
        new_receiver(scratch, StreamId("trial", "-", "audio", "recv", str(n)), *k)
        for n, k in enumerate(keys)
    ]


def authenticating(packets: list[bytes], keys: list[Key]) -> dict[str, int]:
    """For each key (by fingerprint) how many of `packets` (SRTP or SRTCP) authenticate under
    it."""
    hits: dict[str, int] = {}
    for (_, key, salt), rx in zip(keys, _trials(keys), strict=True):
        ok = sum(1 for data in packets if _opens(rx, data))
        if ok:
            hits[key_fingerprint(key, salt)] = ok
    return hits


def _recent(leg: MediaLeg) -> list[tuple[float, object, bytes]]:
    """A copy of the leg's packet history, with its own RTCP socket's (no rtcp-mux), in arrival
    order. `list()` copies a deque in one C call, so the suite's loop thread, still receiving,
    cannot mutate it under the step's iteration."""
    out = list(leg.recent) if leg.recent is not None else []
    channel = leg.rtcp_channel
    if channel is not None and channel.socket is not None and channel.socket.recent:
        out = sorted(out + list(channel.socket.recent), key=lambda r: r[0])
    return out


def _first_under(leg: MediaLeg, keys: list[Key], after: float) -> float | None:
    """Arrival time of the first packet after `after` that authenticates under one of `keys`."""
    rxs = _trials(keys)
    for t, _, data in _recent(leg):
        if t >= after and any(_opens(rx, data) for rx in rxs):
            return t
    return None


def _stale_srtcp(
    leg: MediaLeg, old: list[Key], new: list[Key], first: float, settled: float
) -> tuple[int, int]:
    """SRTCP after a rekey: (packets under the new keys, packets under an old key that came
    after SRTCP, or on rtcp-mux SRTP, had moved to the new key). Each comparison is between
    datagrams of one socket, read in order, so the machine's load cannot reorder them; on an
    RTCP port of its own with no SRTCP under the new key, the deadline `settled` is the line."""
    olds, news = _trials(old), _trials(new)
    rtcp_port = leg.rtcp_channel.socket if leg.rtcp_channel is not None else None
    under_new = stale = 0
    moved: dict[int, float] = {id(leg): first}
    for sock in (leg, rtcp_port):
        if sock is None or sock.recent is None:
            continue
        for t, _, data in list(sock.recent):
            if not is_rtcp(data):
                continue
            if any(_opens(rx, data) for rx in news):
                under_new += 1
                moved.setdefault(id(sock), t)
            elif t > moved.get(id(sock), settled) and any(_opens(rx, data) for rx in olds):
                stale += 1
    return under_new, stale


def _new_keys(p: Participant, kind: str, after: float) -> list[Key]:
    return [r.recv_keys[kind] for r in p.rekeys if r.at >= after and kind in r.changed]


def forward_security(m: Membership, leaver: str, medium: str | None = None) -> Evidence:
    """R6: after the leave, nothing the remaining participants received (once their rekey took
    effect, or once the rekey deadline passed) authenticates under any key the leaver held.

    With `medium`, only packets of that medium are judged (against every key the leaver held,
    whatever its medium). The control: the judged packets must open under the keys the receiver
    itself was given, or they show nothing about keys (noise, or a stream the suite cannot
    read)."""
    _claimed(m, medium)
    event = m.departure(leaver)  # a BYE, or vanished without one
    keys = held_keys(m.conf.ledger, leaver)
    if not keys:
        raise Inconclusive(f"the ledger holds no key of {leaver}")
    problems, judged, control, srtcp = [], 0, 0, 0
    for p in m.remaining():
        for kind, leg in _legs(p, medium):
            new = _new_keys(p, kind, event.started)
            cut = _first_under(leg, new, event.started) if new else None
            cut = cut if cut is not None else event.settled
            packets = [d for t, _, d in _recent(leg) if t >= cut]
            judged += len(packets)
            srtcp += sum(1 for d in packets if is_rtcp(d))
            hits = authenticating(packets, keys)
            if hits:
                n = sum(hits.values())
                problems.append(
                    f"{n} of {len(packets)} {kind} packets {p.name} received after {leaver} left "
                    f"authenticate under {leaver}'s key(s) {', '.join(sorted(hits))}"
                )
            control += sum(authenticating(packets, _own_keys(p, kind)).values())
    if problems:
        raise NonConformance("no forward security: " + "; ".join(problems))
    word = _stream_word(medium)
    if judged == 0:
        raise Inconclusive(f"no {word}packet was received after {leaver} left: nothing to judge")
    if control == 0:
        raise Inconclusive(
            f"none of the {judged} {word}packets received after {leaver} left opened under the "
            "receivers' own keys: the control failed, they show nothing about keys"
        )
    return Evidence.of(
        OWN_KEYS_CONTROL,
        packets_judged=judged,
        srtcp_packets_judged=srtcp,
        packets_opening_under_own_keys=control,
        leaver_keys_tried=len(keys),
        packets_opened=0,
    )


def backward_security(m: Membership, joiner: str, medium: str | None = None) -> Evidence:
    """R6: nothing received before the join authenticates under any key the joiner got.

    With `medium`, only packets of that medium are judged (against every key the joiner got);
    the control is as for `forward_security`."""
    _claimed(m, medium)
    event = m.event("join", joiner)
    keys = held_keys(m.conf.ledger, joiner, "recv")
    if not keys:
        raise Inconclusive(f"the ledger holds no key {joiner} received")
    problems, judged, control, srtcp = [], 0, 0, 0
    for p in m.conf.participants.values():
        if p.name == joiner:
            continue
        for kind, leg in _legs(p, medium):
            packets = [d for t, _, d in _recent(leg) if t < event.started]
            judged += len(packets)
            srtcp += sum(1 for d in packets if is_rtcp(d))
            hits = authenticating(packets, keys)
            if hits:
                problems.append(
                    f"{sum(hits.values())} of {len(packets)} {kind} packets {p.name} received "
                    f"before {joiner} joined authenticate under key(s) {', '.join(sorted(hits))} "
                    f"that {joiner} received"
                )
            control += sum(authenticating(packets, _own_keys(p, kind)).values())
    if problems:
        raise NonConformance("no backward security: " + "; ".join(problems))
    word = _stream_word(medium)
    if judged == 0:
        raise Inconclusive(f"no {word}packet was received before {joiner} joined: nothing to judge")
    if control == 0:
        raise Inconclusive(
            f"none of the {judged} {word}packets received before {joiner} joined opened under "
            "the receivers' own keys: the control failed, they show nothing about keys"
        )
    return Evidence.of(
        OWN_KEYS_CONTROL,
        packets_judged=judged,
        srtcp_packets_judged=srtcp,
        packets_opening_under_own_keys=control,
        joiner_keys_tried=len(keys),
        packets_opened=0,
    )


def keys_fresh(ledger: KeyStreamLedger, medium: str | None = None) -> Evidence:
    """R6 freshness: no master key or salt given to a participant repeats one it held before,
    and no unicast key or salt shows up at two participants (a group key may, by design).
    Judged only once a rekey brought new keys: without them there is no freshness to see.

    With `medium`, the keys of that medium's streams are judged, each against every earlier
    key of any medium (a video key that repeats an audio key is not fresh either), and a new
    key of that medium must have come from the target."""
    rows = ledger.keys_for_evidence()
    if not rows:
        raise Inconclusive("the ledger recorded no keys")
    mine = [r for r in rows if medium is None or stream_medium(str(r["stream"])) == medium]
    rekeyed = [r for r in mine if "epoch-" in str(r["stream"])]
    if medium is not None:  # the target's keys, not the suite's own answers
        rekeyed = [r for r in rekeyed if " <- " in str(r["stream"])]
    if not rekeyed:
        what = f"new {medium} key came from the target" if medium else "rekey happened"
        raise Inconclusive(f"no {what}: no new key to judge the freshness of")
    seen: dict[tuple[str, bytes], str] = {}
    problems = []
    for row in rows:
        stream = str(row["stream"])
        owner = stream.split(" ", 1)[0]
        common = stream_medium(stream) == COMMON
        judged = medium is None or stream_medium(stream) == medium
        for what in ("key", "salt"):
            value = bytes(row[what])  # type: ignore[arg-type]
            earlier = seen.get((what, value))
            if earlier is not None:
                e_owner = earlier.split(" ", 1)[0]
                e_common = stream_medium(earlier) == COMMON
                if judged and (e_owner == owner or not (common and e_common)):
                    problems.append(f"the master {what} of {stream} repeats that of {earlier}")
            else:
                seen[(what, value)] = stream
    if problems:
        raise NonConformance("keys are not fresh: " + "; ".join(sorted(set(problems))[:6]))
    return Evidence.of(keys_compared=len(mine), rekeyed_keys=len(rekeyed), repeats=0)


def fresh_keys_in_use(m: Membership, medium: str) -> Evidence:
    """R6 freshness of one medium's streams (`keys_fresh`), resting on packets: the new keys
    the rekeys brought for that medium must be the ones the participants' packets open under,
    or the ledger's keys say nothing about what protected the media."""
    _claimed(m, medium)
    evidence = keys_fresh(m.conf.ledger, medium)
    opened = 0
    for p in m.remaining():
        for kind, leg in _legs(p, medium):
            new = [r.recv_keys[kind] for r in p.rekeys[1:] if kind in r.changed]
            if new:
                opened += sum(authenticating([d for _, _, d in _recent(leg)], new).values())
    if opened == 0:
        raise Inconclusive(
            f"no {medium} packet was received under a key a rekey brought: the fresh keys were "
            "never seen in use"
        )
    return evidence + Evidence.of(packets_under_new_keys=opened)


def rekeyed_completely(m: Membership, kind: str, name: str, medium: str | None = None) -> Evidence:
    """R6 completeness: after the event every stream every remaining participant (present
    before it) receives changed key and the new key carried packets. Returns the rekey latency
    per participant (seconds from the 200 OK of the BYE/INVITE to its last stream's first
    packet under a new key). With `medium`, only that medium's streams are judged.

    A stream whose key did not change, or that carried packets but none under its new key, is
    a finding; one that carried no packet at all since the event shows nothing: inconclusive."""
    _claimed(m, medium)
    event = m.event(kind, name)
    problems, silent = [], []
    latencies: dict[str, float] = {}
    streams = srtcp = 0
    for p in m.remaining():
        if p.name == name or not p.rekeys or p.rekeys[0].at >= event.started:
            continue  # the joiner itself, or someone who came in the same burst
        legs = [(k, leg) for k, leg in _legs(p, medium) if leg.remote is not None]
        if not legs:
            continue
        worst = 0.0
        for leg_kind, leg in legs:
            new = _new_keys(p, leg_kind, event.started)
            if not new:
                problems.append(f"{p.name}'s {leg_kind} stream was not rekeyed")
                continue
            first = _first_under(leg, new, event.started)
            if first is None:
                if any(t >= event.started for t, _, _ in _recent(leg)):
                    problems.append(f"{p.name} received no {leg_kind} packet under its new key")
                else:
                    silent.append(f"{p.name} received no {leg_kind} packet after the {kind}")
                continue
            streams += 1
            worst = max(worst, first - event.done, 0.0)
            old = [
                r.recv_keys[leg_kind]
                for r in p.rekeys
                if r.at < event.started and leg_kind in r.recv_keys
            ]
            moved, stale = _stale_srtcp(leg, old[-1:], new, first, event.settled)
            srtcp += moved
            if stale:
                problems.append(
                    f"{p.name} received {stale} SRTCP packets on its {leg_kind} stream under its "
                    "old key after its media had moved to the new one: SRTCP was not rekeyed"
                )
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
    if silent:
        raise Inconclusive(f"after {name}'s {kind}, " + "; ".join(silent) + ": nothing to judge")
    if not latencies:
        what = f"with a {medium} stream " if medium else ""
        raise Inconclusive(f"nobody {what}was in the conference before {name}'s {kind}")
    m.latencies = latencies
    m.latency_event = event
    return Evidence.of(
        participants=len(latencies), streams_rekeyed=streams, srtcp_under_new_keys=srtcp
    )


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
