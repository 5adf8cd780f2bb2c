"""`confsec analyze CAPTURE.pcap`: judge a capture and write the reports `confsec run` writes.

The verdicts go through the same `build_verdicts` as a live run, one pseudo-scenario per check,
so a dashboard that reads `verdicts.json` needs nothing new for capture analysis. The findings
themselves (with example frame numbers, never keys) go to `capture-findings.json` beside it,
with the streams the analyser could not judge.

Every judgement carries the `Evidence` it rests on, which `verdicts.json` shows as each
scenario's `observed`. A check passes only on something it judged, never on the absence
of findings alone: a stream it could not judge makes it inconclusive and is named. A check whose
subject the capture does not hold at all (no SIP for the SDES check, no RTP/RTCP for the media
checks, no DTLS for the handshake check, no a=fingerprint for the certificate check, no
interface port) is left out, so its requirement rests on the checks that did judge, or is "not
covered".

`--keylog FILE` is one NSS key log for both kinds of handshake: tshark decrypts SIP over TLS
with it (`tlskeys`), and its `CLIENT_RANDOM` lines give each DTLS-SRTP handshake's master secret
(`dtls_checks`), e.g. the SSLKEYLOGFILE of the endpoints: `confsec analyze call.pcap --keylog
sslkeys.log`. Without it DTLS-SRTP media is named as unjudged, and the handshakes are still
judged.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from confsec.analyze.checks import Analyzer
from confsec.analyze.dtls import KeyLog
from confsec.analyze.dtls_checks import judge_dtls
from confsec.analyze.findings import Finding, SrtpKey, Unjudged
from confsec.analyze.judgement import Judgement, earned, findings_text, named
from confsec.analyze.pcap import packets
from confsec.analyze.signalling import Fingerprint
from confsec.errors import ConfigError
from confsec.media.srtp import UnsupportedSuite, profile_for
from confsec.observed import Evidence
from confsec.report.verdicts import Verdict

FEATURE = "confsec analyze"
_UNJUDGED_LISTED = 1000
"""A capture full of stray UDP can make many one-packet "streams"; the file stays readable."""


def load_keys(path: Path) -> list[SrtpKey]:
    """SRTP keys: JSON (a list of {suite, inline} or {suite, key, salt} in hex) or text lines.

    Text lines are `SUITE inline:BASE64` or whole `a=crypto:` lines, so that keys copied from a
    vendor's logs work as they are. The JSON form is what the suite's evidence bundle holds.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the keys file: {exc.strerror}") from None
    rows: list[tuple[str, str, Any]] = []
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from None
        items = doc.get("keys", []) if isinstance(doc, dict) else doc
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "suite" not in item:
                raise ConfigError(f"{path}: keys[{i}]: needs a suite and inline or key+salt")
            if "inline" in item:
                rows.append((f"keys[{i}]", item["suite"], item["inline"]))
            elif "key" in item and "salt" in item:
                rows.append((f"keys[{i}]", item["suite"], (item["key"], item["salt"])))
            else:
                raise ConfigError(f"{path}: keys[{i}]: needs inline or key and salt")
    else:
        for n, line in enumerate(text.splitlines(), 1):
            words = line.replace("a=crypto:", "").split()
            inline = next((w for w in words if w.startswith("inline:")), None)
            suite = next((w for w in words if w.isupper() and "_" in w), None)
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if inline is None or suite is None:
                raise ConfigError(f"{path}: line {n}: expected 'SUITE inline:BASE64'")
            rows.append((f"line {n}", suite, inline.removeprefix("inline:").split("|")[0]))
    keys = []
    for where, suite, value in rows:
        try:
            prof = profile_for(suite)
            if isinstance(value, tuple):
                key, salt = bytes.fromhex(value[0]), bytes.fromhex(value[1])
            else:
                raw = base64.b64decode(value, validate=True)
                key, salt = raw[: prof.key_len], raw[prof.key_len :]
        except (UnsupportedSuite, ValueError, binascii.Error) as exc:
            raise ConfigError(f"{path}: {where}: {exc}") from None
        if (len(key), len(salt)) != (prof.key_len, prof.salt_len):
            raise ConfigError(
                f"{path}: {where}: {suite} needs a {prof.key_len}-byte key and a "
                f"{prof.salt_len}-byte salt"
            )
        keys.append(SrtpKey(suite, key, salt, f"{path.name} {where}"))
    return keys


def analyze(
    capture: Path,
    keys: list[SrtpKey],
    o1_ports: list[int],
    negotiated: Iterable[tuple[str, int, str]] = (),
    sdp_from_tls: int = 0,
    keylog: KeyLog | None = None,
    fingerprints: Iterable[tuple[str, int, tuple[Fingerprint, ...]]] = (),
) -> tuple[Analyzer, float]:
    """One pass over the capture; returns the analyser and the seconds it took.

    `negotiated`, `sdp_from_tls` and `fingerprints` come from SIP over TLS read with the key log
    (`tlskeys`): the m= lines found there, how many frames of it carried SDP, and the DTLS
    certificate fingerprints it signalled. `keylog` is the same key log read for DTLS master
    secrets (None when none was given: DTLS-SRTP media is then not judged, and says so).
    """
    started = time.perf_counter()
    analyzer = Analyzer(keys, o1_ports, negotiated, sdp_from_tls, keylog, fingerprints)
    analyzer.feed_all(packets(capture))
    analyzer.finish()
    return analyzer, time.perf_counter() - started


def judge(a: Analyzer, o1_ports: list[int]) -> list[Judgement]:
    """One judgement per check, each with the evidence it rests on (see the module docstring)."""
    by_check: dict[str, list[Finding]] = {}
    for f in a.findings.values():
        by_check.setdefault(f.check, []).append(f)
    unjudged: dict[str, list[Unjudged]] = {}
    for u in a.unjudged:
        unjudged.setdefault(u.check, []).append(u)
    c = a.checks
    out = []

    found = by_check.get("sdes-in-clear", [])
    if found or c.sip_clear or c.sdp_from_tls:
        evidence = Evidence.of(
            SIP_messages_in_the_clear=c.sip_clear,
            TLS_frames_with_SDP=c.sdp_from_tls,
            SDES_keys_in_the_clear=sum(f.count for f in found),
        )
        if found:
            verdict, reason = Verdict.FAIL, findings_text(found)
        else:
            verdict = Verdict.PASS
            reason = (
                f"{c.sip_clear} SIP messages in the clear, none with a=crypto; "
                f"{c.sdp_from_tls} frames of SIP over TLS carry SDP (key log)"
            )
        out.append(
            Judgement(
                "No SDES key is sent over unprotected signalling", "R3", verdict, reason, evidence
            )
        )
    out += judge_dtls(c, by_check, unjudged)

    if c.rtp + c.rtcp == 0 and not by_check.get("media-in-clear"):
        return [earned(j) for j in out + _o1(a, by_check, unjudged, o1_ports)]
    keyed_control = (
        (f"{c.keyed_streams} RTP streams authenticate under the {len(a.keys)} known keys",)
        if c.keyed_streams
        else ()
    )
    found = by_check.get("media-in-clear", [])
    open_ = unjudged.get("media-in-clear", [])
    evidence = Evidence(
        {
            "streams judged": c.streams_judged,
            "packets judged": c.packets_judged,
            "streams unjudged": len(open_),
            "RTP packets": c.rtp,
            "RTCP packets": c.rtcp,
        },
        keyed_control,
    )
    if found:
        verdict, reason = Verdict.FAIL, findings_text(found)
        if open_:
            reason += f"; also not judged: {named(open_)}"
    elif open_:
        verdict = Verdict.INCONCLUSIVE
        reason = (
            f"{len(open_)} of {c.streams_judged + len(open_)} RTP/RTCP streams not judged: "
            f"{named(open_)}"
        )
    else:
        verdict = Verdict.PASS
        reason = (
            f"all {c.streams_judged} RTP/RTCP streams judged ({c.packets_judged} packets): "
            "every packet authenticates under its stream's key"
        )
    out.append(Judgement("No plain RTP or RTCP on media ports", "R3", verdict, reason, evidence))

    found = by_check.get("keystream-reuse", [])
    open_ = unjudged.get("keystream-reuse", [])
    evidence = Evidence(
        {
            "keyed streams": c.keyed_streams,
            "packets judged": c.keyed_packets,
            "shared key streams": len(found),
            "streams unjudged": len(open_),
        },
        keyed_control,
    )
    if found:
        verdict, reason = Verdict.FAIL, "; ".join(f.sentence for f in found)
    elif c.keyed_streams == 0:
        verdict = Verdict.INCONCLUSIVE
        reason = "no RTP stream with a known key: give --keys (or --keylog)"
        if open_:
            reason += f"; not compared: {named(open_)}"
    elif open_:
        verdict = Verdict.INCONCLUSIVE
        reason = (
            f"{c.keyed_streams} keyed streams share no (key, salt, SSRC), but "
            f"{len(open_)} streams were not compared: {named(open_)}"
        )
    else:
        verdict = Verdict.PASS
        reason = f"{c.keyed_streams} keyed streams, no (key, salt, SSRC) shared"
    out.append(Judgement("No key stream is reused", "R4", verdict, reason, evidence))
    return [earned(j) for j in out + _o1(a, by_check, unjudged, o1_ports)]


def _o1(
    a: Analyzer,
    by_check: dict[str, list[Finding]],
    unjudged: dict[str, list[Unjudged]],
    o1_ports: list[int],
) -> list[Judgement]:
    c = a.checks
    if not (o1_ports or c.esp):
        return []
    found = by_check.get("o1-interfaces", [])
    open_ = unjudged.get("o1-interfaces", [])
    evidence = Evidence.of(
        packets_on_the_interfaces=c.o1_packets,
        TCP_streams_reassembled=c.tcp_streams,
        TLS_records=c.o1_tls,
        ESP_packets=c.esp,
        TCP_segments_retransmitted=c.tcp_retransmitted,
        bytes_unjudged=c.o1_unjudged_bytes,
    )
    if found:
        verdict, reason = Verdict.FAIL, findings_text(found)
        if open_:
            reason += f"; also not judged: {named(open_)}"
    elif open_:
        verdict = Verdict.INCONCLUSIVE
        reason = f"{c.o1_tls} TLS records, but not every byte could be judged: {named(open_)}"
    elif c.o1_tls + c.esp == 0:
        verdict = Verdict.INCONCLUSIVE
        reason = f"no TLS record or ESP packet on the interface ports {o1_ports} in the capture"
    else:
        verdict = Verdict.PASS
        reason = (
            f"{c.esp} ESP packets (encrypted), {c.o1_tls} TLS records in {c.tcp_streams} "
            "reassembled TCP streams on the interfaces; TLS protects the keys though NDS/IP "
            "asks for ESP"
        )
    return [
        Judgement(
            "The AS/MRFC/MRFP interfaces carry no key in the clear", "O1", verdict, reason, evidence
        )
    ]


def write_reports(
    reports: Path, capture: Path, judgements: list[Judgement], a: Analyzer, seconds: float
) -> dict[str, Any]:
    from confsec.report.plugin import ScenarioResult, build_verdicts

    results = []
    for j in judgements:
        r = ScenarioResult(f"analyze::{capture.name}::{j.name}")
        r.meta = {
            "reqs": [j.requirement],
            "scenario": j.name,
            "feature": FEATURE,
            "params": {"capture": str(capture)},
        }
        r.phases = {"call": (j.verdict, j.reason)}
        r.evidence = j.evidence
        r.duration_s = seconds / max(1, len(judgements))
        r.finished = time.time()
        results.append(r)
    doc = build_verdicts(
        results,
        set(),
        started=time.time() - seconds,
        extra={"target": {"name": f"capture {capture.name}", "capture": str(capture)}},
    )
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "verdicts.json").write_text(json.dumps(doc, indent=2) + "\n")
    (reports / "capture-findings.json").write_text(
        json.dumps(
            {
                "capture": str(capture),
                "packets": a.frames,
                "seconds": round(seconds, 3),
                "findings": [f.as_dict() for f in a.findings.values()],
                "unjudged": [u.as_dict() for u in a.unjudged[:_UNJUDGED_LISTED]],
                "unjudged_total": len(a.unjudged),
            },
            indent=2,
        )
        + "\n"
    )
    _junit(reports / "junit.xml", judgements, seconds)
    return doc


def _junit(path: Path, judgements: list[Judgement], seconds: float) -> None:
    fails = sum(j.verdict is Verdict.FAIL for j in judgements)
    cases = []
    for j in judgements:
        inner = ""
        if j.verdict is Verdict.FAIL:
            inner = f"<failure message={quoteattr(j.reason[:500])}/>"
        elif j.verdict is not Verdict.PASS:
            inner = f"<skipped message={quoteattr(str(j.verdict) + ': ' + j.reason[:500])}/>"
        cases.append(
            f'<testcase classname="{FEATURE}.{j.requirement}" '
            f"name={quoteattr(j.name)}>{inner}</testcase>"
        )
    path.write_text(
        f'<?xml version="1.0" encoding="utf-8"?>\n<testsuites><testsuite name='
        f'"{escape(FEATURE)}" tests="{len(judgements)}" failures="{fails}" '
        f'time="{seconds:.3f}">{"".join(cases)}</testsuite></testsuites>\n'
    )


def run_analyze(args: argparse.Namespace) -> int:
    from confsec.report.conformance import exit_code

    capture = Path(args.capture)
    keys = load_keys(Path(args.keys)) if args.keys else []
    negotiated: list[tuple[str, int, str]] = []
    fingerprints: list[tuple[str, int, tuple[Fingerprint, ...]]] = []
    sdp_from_tls = 0
    keylog: KeyLog | None = None
    if args.keylog:
        from confsec.analyze.dtls import read_keylog
        from confsec.analyze.tlskeys import signalling_from_tls

        # One NSS key log serves both: SIP over TLS (tshark decrypts it) and DTLS-SRTP (its
        # CLIENT_RANDOM lines give each handshake's master secret).
        tls = signalling_from_tls(capture, Path(args.keylog))
        keys += tls.keys
        negotiated, sdp_from_tls = tls.media, tls.sdp_frames
        fingerprints = tls.fingerprints
        keylog = read_keylog(Path(args.keylog))
    a, seconds = analyze(
        capture, keys, args.o1_port, negotiated, sdp_from_tls, keylog, fingerprints
    )
    judgements = judge(a, args.o1_port)
    doc = write_reports(Path(args.reports), capture, judgements, a, seconds)
    rate = a.frames / seconds if seconds else 0.0
    c = a.checks
    dtls = (
        f", {c.dtls_associations} DTLS associations ({c.dtls_keyed} keyed from the key log)"
        if c.dtls_associations
        else ""
    )
    print(
        f"confsec analyze: {capture}: {a.frames} frames in {seconds:.2f} s "
        f"({rate:,.0f} frames/s), {len(keys)} keys{dtls}"
    )
    for j in judgements:
        print(f"  {j.requirement:<3} {j.verdict!s:<13} {j.name}")
        print(f"      observed: {j.evidence.summary()}")
        if j.verdict is not Verdict.PASS:
            print(f"      {j.reason[:300]}")
    where = Path(args.reports).resolve()
    print(f"reports: {where}/verdicts.json, capture-findings.json, junit.xml")
    sys.stdout.flush()
    return exit_code(doc)
