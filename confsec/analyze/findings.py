"""What the capture checks record: known keys, findings, unjudged streams, and the counters.

Every check of `confsec.analyze.checks` writes to one `Tally`, so that a finding's key (its
check, kind and sentence) stays unique across the checks and the report lists findings in the
order the pass met them, whichever check met them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EXAMPLES = 5
"""Example frames kept per finding or unjudged stream: enough to find it in Wireshark."""


@dataclass(frozen=True)
class SrtpKey:
    suite: str
    key: bytes = field(repr=False)
    salt: bytes = field(repr=False)
    origin: str = "--keys"


@dataclass
class Finding:
    """One thing the capture shows that a requirement forbids (or that stops a judgement)."""

    check: str
    requirement: str
    kind: str
    sentence: str
    frames: list[int] = field(default_factory=list)
    count: int = 0

    def add(self, frame: int) -> None:
        self.count += 1
        if len(self.frames) < EXAMPLES:
            self.frames.append(frame)

    def as_dict(self) -> dict[str, object]:
        return {
            "check": self.check,
            "requirement": self.requirement,
            "kind": self.kind,
            "sentence": self.sentence,
            "packets": self.count,
            "example_frames": self.frames,
        }


@dataclass
class Unjudged:
    """A stream (or part of one) the analyser could not judge, named so that the verdict can
    say what it did not see instead of passing over it."""

    check: str
    requirement: str
    stream: str
    why: str
    packets: int = 0
    bytes: int = 0
    frames: list[int] = field(default_factory=list)

    def describe(self) -> str:
        size = f"{self.bytes} bytes" if self.bytes else f"{self.packets} packets"
        return f"{self.stream} ({size}): {self.why}"

    def as_dict(self) -> dict[str, object]:
        return {
            "check": self.check,
            "requirement": self.requirement,
            "stream": self.stream,
            "why": self.why,
            "packets": self.packets,
            "bytes": self.bytes,
            "example_frames": self.frames,
        }


@dataclass
class Checks:
    """Each check's counters, for the report: what was judged and how much of it."""

    sip_clear: int = 0
    sdp_from_tls: int = 0
    """Frames of SIP over TLS with SDP, read with the key log (tshark)."""
    rtp: int = 0
    rtcp: int = 0
    streams_judged: int = 0
    packets_judged: int = 0
    keyed_streams: int = 0
    """RTP streams with a known key: the ones the key-stream ledger sees (R4)."""
    keyed_packets: int = 0
    o1_packets: int = 0
    o1_tls: int = 0
    """TLS record headers read on the O1 ports."""
    tcp_streams: int = 0
    """Directions of TCP connections on the O1 ports that carried bytes, reassembled."""
    tcp_retransmitted: int = 0
    o1_unjudged_bytes: int = 0
    esp: int = 0
    dtls_datagrams: int = 0
    dtls_associations: int = 0
    dtls_completed: int = 0
    """Associations both of whose sides sent ChangeCipherSpec."""
    dtls_keyed: int = 0
    """Associations whose SRTP keys were derived with the key log."""
    dtls_null: int = 0
    """Associations that selected a NULL SRTP profile."""
    dtls_early_media: int = 0
    """RTP/RTCP packets on a DTLS flow before a handshake there completed with an SRTP profile."""
    dtls_signalled: int = 0
    """Media addresses for which SDP signalled an a=fingerprint."""
    certificates_judged: int = 0
    certificates_matched: int = 0


@dataclass
class Tally:
    """Where every check writes: findings (one per check, kind and sentence, counting the
    packets that show it), the streams it could not judge, and the counters."""

    checks: Checks = field(default_factory=Checks)
    findings: dict[tuple[str, str], Finding] = field(default_factory=dict)
    unjudged: list[Unjudged] = field(default_factory=list)

    def finding(self, check: str, req: str, kind: str, sentence: str) -> Finding:
        f = self.findings.get((check, kind + sentence))
        if f is None:
            f = self.findings[(check, kind + sentence)] = Finding(check, req, kind, sentence)
        return f
