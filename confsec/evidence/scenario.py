"""Per-scenario evidence: collected from a `ConferenceRun` when its scenario ends.

`collect()` reads what the run observed (every participant UA's trace, the media legs' first
datagrams, the key-stream ledger, measured numbers) without touching the network; `write()` puts
the redacted half under `reports/evidence/<slug>/` and the raw half (full pcap, SRTP keys) under
the bundle's `scenarios/<slug>/`. It is called from the fixture teardown, once per scenario, and
costs a few milliseconds: struct-built frames, no dissection.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confsec.codec.sip import Request, Response
from confsec.evidence.pcap import Frame, PcapWriter
from confsec.evidence.redact import redact, redact_text

LEDGER_FIELDS = ("stream", "suite", "key_fingerprint", "ssrcs", "packets_seen")


@dataclass
class ScenarioEvidence:
    """What one scenario observed, split into what a report may show and what it may not."""

    ladder: list[dict[str, Any]] = field(default_factory=list)
    messages: list[tuple[dict[str, Any], bytes]] = field(default_factory=list)
    media: list[Frame] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    srtp_keys: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    sut: dict[str, Any] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)

    # -- renderings --------------------------------------------------------------------------

    def ladder_text(self) -> str:
        """The SIP ladder, one line per message, then every message redacted."""
        if not self.ladder:
            return "(no SIP message was exchanged)\n"
        t0 = self.ladder[0]["time"]
        lines = []
        for row in self.ladder:
            arrow = "->" if row["direction"] == "sent" else "<-"
            tls = f" [{row['tls']}]" if row["tls"] else f" [{row['transport'].upper()}]"
            lines.append(
                f"+{row['time'] - t0:8.3f}s  {row['participant']:<8} {arrow} {row['remote']:<21}"
                f"{tls:<11} {row['summary']}"
            )
        lines.append("")
        for row, raw in self.messages:
            arrow = "->" if row["direction"] == "sent" else "<-"
            lines.append(f"==== {row['participant']} {arrow} {row['remote']}  {row['summary']}")
            lines.append(redact_text(raw.decode("utf-8", "replace"), self.secrets).rstrip())
            lines.append("")
        return "\n".join(lines) + "\n"

    def ledger_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(LEDGER_FIELDS)
        for row in self.ledger:
            writer.writerow(
                [
                    row["stream"],
                    row["suite"],
                    row["key_fingerprint"],
                    " ".join(str(s) for s in row["ssrcs"]),
                    row["packets_seen"],
                ]
            )
        return buf.getvalue()

    def pcap(self, *, redacted: bool) -> bytes:
        writer = PcapWriter()
        for row, raw in self.messages:
            data = redact(raw, self.secrets) if redacted else raw
            writer.add(
                Frame(row["time"], row["l4"], row["local_addr"], row["remote_addr"], data)
                if row["direction"] == "sent"
                else Frame(row["time"], row["l4"], row["remote_addr"], row["local_addr"], data)
            )
        for frame in self.media:  # SRTP is ciphertext: no redaction needed
            writer.add(frame)
        return writer.to_bytes()

    # -- output --------------------------------------------------------------------------------

    def write(self, report_dir: Path, bundle_dir: Path | None, meta: dict[str, Any]) -> None:
        """Redacted files in `report_dir`, raw ones in `bundle_dir` (if given)."""
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "sip-ladder.txt").write_text(self.ladder_text())
        (report_dir / "key-ledger.csv").write_text(self.ledger_csv())
        (report_dir / "slice.pcap").write_bytes(self.pcap(redacted=True))
        doc = {**meta, "metrics": self.metrics, "sut": self.sut, "ledger": self.ledger}
        (report_dir / "evidence.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
        if bundle_dir is not None:
            bundle_dir.mkdir(parents=True, exist_ok=True)
            (bundle_dir / "full.pcap").write_bytes(self.pcap(redacted=False))
            (bundle_dir / "srtp-keys.json").write_text(json.dumps(self.srtp_keys, indent=1) + "\n")


def _addr(a: Any) -> tuple[str, int]:
    try:
        return (str(a[0]), int(a[1]))
    except (TypeError, IndexError, ValueError):
        return ("127.0.0.1", 0)


def _raw(msg: Request | Response | bytes) -> bytes:
    if isinstance(msg, bytes):
        return msg
    if msg.raw is not None:
        return msg.raw
    try:
        return msg.to_bytes()
    except Exception:  # an unchecked, crafted message: show what we can
        return repr(msg).encode()


def media_frames(run: Any) -> list[Frame]:
    """The datagrams the participants' media legs kept (take it before the run closes its
    legs: closing a participant drops them)."""
    # Legs stamp arrivals with the loop clock (time.monotonic); the traces use wall-clock time.
    offset = time.time() - time.monotonic()
    frames = []
    for p in list(run.participants.values()):
        for leg in list(getattr(p, "legs", {}).values()):
            for when, src, data in getattr(leg, "raw_packets", []):
                frames.append(Frame(when + offset, "udp", _addr(src), _addr(leg.local_addr), data))
    return frames


def collect(run: Any, media: list[Frame] | None = None) -> ScenarioEvidence:
    """Everything a `ConferenceRun` observed, secrets kept apart (duck-typed: no import cycle).

    `media`: frames from `media_frames()` taken before the run was closed.
    """
    ev = ScenarioEvidence()
    ev.media = list(media) if media is not None else media_frames(run)
    target = run.target
    ev.secrets = [s for s in target.secrets() if s]
    uas: list[tuple[str, Any]] = [(name, p.ua) for name, p in run.participants.items()]
    uas += [(f"extra{i}", ua) for i, ua in enumerate(getattr(run, "_extra_uas", []))]
    announced: set[str] = set()
    fingerprints: set[str] = set()
    tls: set[str] = set()
    invites: dict[tuple[str, str, int], float] = {}
    setup_ms: list[float] = []
    for name, ua in uas:
        for entry in list(getattr(ua, "trace", [])):
            flow, msg = entry.flow, entry.message
            tls_desc = f"{flow.tls_version}" if flow.tls_version else ""
            row = {
                "time": entry.time,
                "participant": name,
                "direction": entry.direction,
                "transport": flow.transport,
                "l4": "udp" if flow.transport == "udp" else "tcp",
                "local_addr": _addr(flow.local),
                "remote_addr": _addr(flow.remote),
                "remote": f"{_addr(flow.remote)[0]}:{_addr(flow.remote)[1]}",
                "tls": tls_desc,
                "summary": redact_text(entry.summary, ev.secrets),
            }
            ev.ladder.append(row)
            ev.messages.append((row, _raw(msg)))
            if entry.direction == "received":
                if isinstance(msg, Request | Response):
                    for h in ("Server", "User-Agent"):
                        value = msg.headers.get(h)
                        if value:
                            announced.add(f"{h}: {value}")
                if flow.peer_cert_der:
                    fingerprints.add(
                        ":".join(f"{b:02X}" for b in hashlib.sha256(flow.peer_cert_der).digest())
                    )
                if flow.tls_version:
                    tls.add(f"{flow.tls_version} {flow.cipher or ''}".strip())
            try:
                if (
                    isinstance(msg, Request)
                    and msg.method == "INVITE"
                    and entry.direction == "sent"
                ):
                    invites.setdefault((name, msg.call_id, msg.cseq[0]), entry.time)
                elif isinstance(msg, Response) and msg.status >= 200 and msg.cseq[1] == "INVITE":
                    start = invites.pop((name, msg.call_id, msg.cseq[0]), None)
                    if start is not None:
                        setup_ms.append((entry.time - start) * 1000)
            except Exception:  # a malformed message has no usable Call-ID/CSeq
                pass
    ev.ladder.sort(key=lambda r: r["time"])
    ev.messages.sort(key=lambda m: m[0]["time"])
    ev.ledger = [r.as_dict() for r in run.ledger.entries()]
    for row in ev.ledger:
        row["ssrcs"] = list(row.get("ssrcs", ()))
    keys = run.ledger.keys_for_evidence()
    ev.srtp_keys = [{**k, "key": k["key"].hex(), "salt": k["salt"].hex()} for k in keys]
    ev.metrics = {
        "sip_messages": float(len(ev.ladder)),
        "media_datagrams_kept": float(len(ev.media)),
        "streams": float(len(ev.ledger)),
    }
    if setup_ms:
        ev.metrics["call_setup_ms_max"] = round(max(setup_ms), 3)
        ev.metrics["call_setup_ms_mean"] = round(sum(setup_ms) / len(setup_ms), 3)
    for name, value in dict(getattr(run, "metrics", {}) or {}).items():
        try:
            ev.metrics[str(name)] = float(value)
        except (TypeError, ValueError):
            continue
    caps = target.capabilities
    ev.sut = {
        "name": target.name,
        "domain": target.domain,
        "address": f"{target.host}:{target.port}",
        "transport": target.transport,
        "announced": sorted(announced),
        "certificate_sha256": sorted(fingerprints),
        "tls": sorted(tls),
        "capabilities": {k: getattr(caps, k) for k in caps.__dataclass_fields__},
        "timeouts": {k: getattr(target.timeouts, k) for k in target.timeouts.__dataclass_fields__},
    }
    return ev
