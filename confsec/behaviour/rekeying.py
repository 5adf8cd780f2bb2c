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

Keys come from the run's key-stream ledger (the only record of keys); trial decryption uses SRTP
receivers from the one factory, on a throw-away ledger so that trials are not taken for streams.
"""

from __future__ import annotations

import statistics

from confsec.behaviour.membership import Membership
from confsec.behaviour.participant import COMMON, Key, Participant
from confsec.errors import Inconclusive, NonConformance, NotApplicable
from confsec.media.endpoint import MediaLeg
from confsec.media.ledger import KeyStreamLedger, StreamId, key_fingerprint
from confsec.media.srtp import new_receiver
from confsec.observed import Evidence
from confsec.runtime.punctuality import judge_late


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
    event = m.event("leave", leaver)
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
    event = m.event("join", joiner)
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
    event = m.event(kind, name)
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
