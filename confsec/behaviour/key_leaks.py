"""Keys stay where they belong (R3, R5, O4): every byte the target sent, searched for every key.

SDES (RFC 4568) puts a media key in exactly one place: the SDP answer (or a re-offer of the focus,
RFC 3264 8) that its holder receives over TLS. Anywhere else, a key is out: in a provisional or
an error response, in a NOTIFY of the conference event package, in a BFCP status, on a plain
listener, or in a message to someone who does not hold it. Whoever can read that message can
decrypt the stream (R3 for a participant's own streams, R5 for the group key), and the event
package must not be the channel that carries it (O4).

This module is pure: `Sighting`s (one message the target sent, as a party of the suite received
it) and `HeldKey`s (from the run's key-stream ledger) go in, a `LeakScan` comes out, and the
checks judge it. The spellings searched for are `confsec.evidence.secrets.key_spellings`, the
same the report scanner uses, searched in each message as it is and as its base64 runs decode.

The positive control: each key the target issued must be found in its holder's answer, where it
was delivered. A scan that cannot find a key there could not find it anywhere else either, and
the check is inconclusive rather than a pass. No message of a verdict carries a key: keys are
named by the ledger's fingerprint and the streams that used them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from confsec.codec.sip import Request, Response
from confsec.errors import Inconclusive, NonConformance, RemoteProtocolError
from confsec.evidence.secrets import decoded_views, key_spellings
from confsec.media.ledger import KeyStreamLedger, StreamId, key_fingerprint
from confsec.net.bfcp import Received
from confsec.net.trace import TraceEntry
from confsec.observed import Evidence

__all__ = [
    "KINDS",
    "HeldKey",
    "LeakScan",
    "Sighting",
    "bfcp_sightings",
    "event_package_keyless",
    "group_keys_confined",
    "held_keys",
    "scan",
    "trace_sightings",
    "unicast_keys_confined",
]

COMMON = "common"
"""The label of the group-keyed common stream in the ledger (`a=label:common`, R5)."""
KINDS = ("SIP response", "SIP request", "NOTIFY", "unparseable SIP", "BFCP", "plain listener")
"""What the target sent, by kind, in the order the evidence counts them."""
SIP_KINDS = ("SIP response", "SIP request", "NOTIFY")
"""Kinds whose summary already says what the message was ('183 Session Progress (INVITE)')."""
MAX_LISTED = 6
"""How many leaks a refusal names (the count says how many there were)."""


@dataclass(frozen=True)
class Sighting:
    """One message the target sent, as a party of the suite received it."""

    kind: str
    """One of `KINDS`."""
    recipient: str
    """Who received it: a participant's name, or what the probe was."""
    summary: str
    """What it was ('183 Session Progress (INVITE)'), never its body."""
    secure: bool
    """It travelled inside TLS."""
    answer: bool
    """It is a place where SDES legitimately puts a key: a 2xx to an INVITE (the SDP answer)
    or an INVITE of the focus (its re-offer in the dialog, a rekey)."""
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class HeldKey:
    """One master key and salt the ledger shows, with who holds it and whether it is the
    group key. The secrets are kept out of `repr` (pytest prints reprs in tracebacks)."""

    fingerprint: str
    streams: tuple[str, ...]
    holders: frozenset[str]
    """Participants with a stream under this key (whoever legitimately knows it)."""
    issued: bool
    """The target issued it: some participant receives with it (the focus sends with it)."""
    group: bool
    """It keys the common stream (the group key of R5)."""
    spellings: tuple[tuple[str, bytes], ...] = field(repr=False)
    exported: bool = False
    """Exported by a DTLS-SRTP handshake (RFC 5764): no message has a place for it at all."""

    @property
    def name(self) -> str:
        """How a verdict names it: fingerprint and the first stream, never the key."""
        more = f" and {len(self.streams) - 1} more" if len(self.streams) > 1 else ""
        return f"key {self.fingerprint} ({self.streams[0]}{more})"


@dataclass(frozen=True)
class Finding:
    """A key found in a message."""

    key: HeldKey
    sighting: Sighting
    spelling: str
    """Which spelling matched ('hex of the key', ...), or '... inside base64' for a hit in a
    decoded base64 run."""

    @property
    def legitimate(self) -> bool:
        """In an SDP answer (or re-offer) to one of its holders, over TLS."""
        s = self.sighting
        return not self.key.exported and s.answer and s.secure and s.recipient in self.key.holders

    @property
    def returned(self) -> bool:
        """A participant's own key handed back to it over TLS (an echo of its offer): nobody
        learnt anything, so it is no leak, though no place a key belongs either."""
        s = self.sighting
        return not self.key.issued and s.secure and s.recipient in self.key.holders

    def describe(self) -> str:
        s = self.sighting
        how = "over TLS" if s.secure else "in the clear"
        what = s.summary if s.kind in SIP_KINDS else f"{s.kind} {s.summary}"
        where = f"{what} to {s.recipient} {how}"
        return f"{self.key.name} in {where}, as {self.spelling}"


@dataclass
class LeakScan:
    """Everything one search found."""

    keys: list[HeldKey]
    scanned: dict[str, int]
    """Messages searched, by kind (every kind of `KINDS`, zeros kept)."""
    findings: list[Finding]
    notify_bodies: int = 0
    """NOTIFYs that carried a body (conference state): what O4 rests on."""

    @property
    def leaks(self) -> list[Finding]:
        return [f for f in self.findings if not f.legitimate and not f.returned]

    def placed(self, key: HeldKey) -> set[str]:
        """The holders of `key` in whose answers the search found it."""
        return {f.sighting.recipient for f in self.findings if f.key is key and f.legitimate}

    def unplaced(self, keys: Iterable[HeldKey]) -> list[tuple[HeldKey, list[str]]]:
        """Issued keys not found in some holder's answer (the positive control's failures)."""
        out = []
        for k in keys:
            if k.issued and not k.exported:
                missing = sorted(k.holders - self.placed(k))
                if missing:
                    out.append((k, missing))
        return out


# -- what goes in -------------------------------------------------------------------------------


def held_keys(ledger: KeyStreamLedger, exported: Collection[str] = ()) -> list[HeldKey]:
    """Every distinct master key and salt of the ledger, with its holders (the owners of the
    streams under it) and its spellings; `exported` names (by fingerprint) the keys a DTLS-SRTP
    handshake made."""
    ids: dict[tuple[str, str], StreamId] = {
        (str(r.stream), r.key_fingerprint): r.stream for r in ledger.entries()
    }
    grouped: dict[tuple[bytes, bytes], list[tuple[str, StreamId | None]]] = {}
    for row in ledger.keys_for_evidence():
        key, salt = bytes(row["key"]), bytes(row["salt"])  # type: ignore[arg-type]
        name = str(row["stream"])
        grouped.setdefault((key, salt), []).append(
            (name, ids.get((name, str(row["key_fingerprint"]))))
        )
    out = []
    for (key, salt), rows in grouped.items():
        sids = [s for _, s in rows if s is not None]
        out.append(
            HeldKey(
                fingerprint=key_fingerprint(key, salt),
                streams=tuple(dict.fromkeys(n for n, _ in rows)),
                holders=frozenset(s.owner for s in sids),
                issued=any(s.direction == "recv" for s in sids),
                group=any(s.label.split()[:1] == [COMMON] for s in sids),
                spellings=tuple(key_spellings(key, salt)),
                exported=key_fingerprint(key, salt) in exported,
            )
        )
    return out


def _raw(msg: Request | Response | bytes) -> bytes:
    if isinstance(msg, bytes):
        return msg
    if msg.raw is not None:
        return msg.raw
    try:
        return msg.to_bytes()
    except Exception:  # a message built unchecked: what it holds is what counts
        return bytes(msg.body or b"")


def _is_answer(msg: Request | Response | bytes) -> bool:
    try:
        if isinstance(msg, Response):
            return 200 <= msg.status < 300 and msg.cseq[1].upper() == "INVITE"
    except RemoteProtocolError:
        return False
    return isinstance(msg, Request) and msg.method == "INVITE"


def trace_sightings(
    recipient: str, trace: Sequence[TraceEntry], *, kind: str | None = None
) -> list[Sighting]:
    """What a user agent received, as sightings (`kind` overrides the kind by message, e.g.
    'plain listener' for a probe of a plain listener)."""
    out = []
    for entry in trace:
        if entry.direction != "received":
            continue
        msg = entry.message
        if kind is not None:
            what = kind
        elif isinstance(msg, Response):
            what = "SIP response"
        elif isinstance(msg, Request):
            what = "NOTIFY" if msg.method == "NOTIFY" else "SIP request"
        else:
            what = "unparseable SIP"
        out.append(
            Sighting(what, recipient, entry.summary, entry.flow.secure, _is_answer(msg), _raw(msg))
        )
    return out


def bfcp_sightings(recipient: str, received: Iterable[Received], *, secure: bool) -> list[Sighting]:
    """What the floor control server sent on one connection. BFCP never carries a media key."""
    return [
        Sighting("BFCP", recipient, r.message.primitive_name, secure, False, r.raw)
        for r in received
    ]


# -- the search ---------------------------------------------------------------------------------


def scan(sightings: Iterable[Sighting], keys: Sequence[HeldKey]) -> LeakScan:
    """Search every sighting for every spelling of every key, as it is and inside base64."""
    result = LeakScan(list(keys), dict.fromkeys(KINDS, 0), [])
    for s in sightings:
        result.scanned[s.kind] = result.scanned.get(s.kind, 0) + 1
        if s.kind == "NOTIFY" and b"\r\n\r\n" in s.data and s.data.split(b"\r\n\r\n", 1)[1]:
            result.notify_bodies += 1
        views = decoded_views(s.data)
        for key in keys:
            spelling = _spelled(key, views)
            if spelling is not None:
                result.findings.append(Finding(key, s, spelling))
    return result


def _spelled(key: HeldKey, views: list[bytes]) -> str | None:
    """The first spelling of `key` in the message (`views[0]`) or in a decoded base64 run."""
    for i, view in enumerate(views):
        for name, value in key.spellings:
            if value in view:
                return name if i == 0 else f"{name} inside base64-encoded data"
    return None


# -- the checks ----------------------------------------------------------------------------------


def unicast_keys_confined(result: LeakScan) -> Evidence:
    """R3: no key of a participant's own streams (issued by the target, or offered by the
    participant) is anywhere but in its holder's SDP answers over TLS."""
    keys = [k for k in result.keys if not k.group]
    return _confined(result, keys, "unicast media key")


def group_keys_confined(result: LeakScan) -> Evidence:
    """R5: the group key reaches the members only in their SDP answers over TLS."""
    keys = [k for k in result.keys if k.group]
    return _confined(result, keys, "group key")


def event_package_keyless(result: LeakScan) -> Evidence:
    """O4: no NOTIFY of the conference event package carries a media key, whoever it went to."""
    if not result.notify_bodies:
        raise Inconclusive(
            f"no NOTIFY carried conference state ({result.scanned.get('NOTIFY', 0)} NOTIFYs "
            "without a body): nothing of the event package to search"
        )
    control = _control(result, result.keys, "media key")
    leaks = [f for f in result.findings if f.sighting.kind == "NOTIFY"]
    if leaks:
        raise NonConformance(_refusal("the conference event package carried media keys", leaks))
    return _evidence(result, result.keys, control)


def _confined(result: LeakScan, keys: list[HeldKey], what: str) -> Evidence:
    if not any(k.issued for k in keys):
        raise Inconclusive(f"the target issued no {what} to any participant: nothing to search")
    control = _control(result, keys, what)
    leaks = [f for f in result.leaks if f.key in keys]
    if leaks:
        raise NonConformance(_refusal(f"{what}s went beyond their holders' SDP answers", leaks))
    return _evidence(result, keys, control)


def _control(result: LeakScan, keys: list[HeldKey], what: str) -> str:
    """The positive control: each issued key found where it was delivered."""
    missing = result.unplaced(keys)
    if missing:
        listed = "; ".join(f"{k.name} not in {', '.join(who)}'s" for k, who in missing[:4])
        raise Inconclusive(
            f"the search did not find {len(missing)} {what}(s) in the SDP answers that "
            f"delivered them ({listed}): it could not have found them anywhere else either"
        )
    places = sum(len(result.placed(k)) for k in keys if k.issued)
    exported = sum(1 for k in keys if k.issued and k.exported)
    if exported and not places:
        # DTLS-SRTP: the keys never travel, so there is no answer to find them in; each one
        # protected media the participants authenticated, and any sighting at all is a leak.
        return f"{exported} {what}(s) exported by DTLS-SRTP handshakes: no message carries them"
    return f"every issued {what} found in its holders' SDP answers over TLS ({places} places)"


def _refusal(head: str, leaks: list[Finding]) -> str:
    listed = "; ".join(f.describe() for f in leaks[:MAX_LISTED])
    more = f"; and {len(leaks) - MAX_LISTED} more" if len(leaks) > MAX_LISTED else ""
    n = len(leaks)
    return f"{head} ({n} sighting{'s' if n > 1 else ''}): {listed}{more}"


def _evidence(result: LeakScan, keys: list[HeldKey], control: str) -> Evidence:
    counts = {f"{k.replace(' ', '_')}_messages_searched": n for k, n in result.scanned.items()}
    return Evidence.of(
        control,
        **counts,
        keys_searched=len(keys),
        keys_issued_by_the_target=sum(1 for k in keys if k.issued),
        spellings_searched=sum(len(k.spellings) for k in keys),
        legitimate_places_found=sum(len(result.placed(k)) for k in keys),
        leaks=0,
    )
