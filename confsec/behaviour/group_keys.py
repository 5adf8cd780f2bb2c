"""Group keys for the common stream (R5), as the suite judges them: every member decrypts the
common stream under one group key that no unicast stream shares, and a non-member gets no key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.participant import COMMON, OfferSpec, Participant
from confsec.errors import Inconclusive, NonConformance
from confsec.media.ledger import KeyStreamLedger, key_fingerprint
from confsec.observed import Evidence


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
    out = await conf.join_async(name, OfferSpec(common=True), credentials=credentials, keep=False)
    attempt = NonMemberAttempt(name)
    for r in out.responses:
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
