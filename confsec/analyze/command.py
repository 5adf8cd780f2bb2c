"""`confsec analyze CAPTURE.pcap`: judge a capture and write the reports `confsec run` writes.

The verdicts go through the same `build_verdicts` as a live run, one pseudo-scenario per check,
so a dashboard that reads `verdicts.json` needs nothing new for capture analysis. The findings
themselves (with example frame numbers, never keys) go to `capture-findings.json` beside it.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from confsec.analyze.checks import Analyzer, Finding, SrtpKey
from confsec.analyze.pcap import packets
from confsec.errors import ConfigError
from confsec.media.srtp import UnsupportedSuite, profile_for
from confsec.report.verdicts import Verdict

FEATURE = "confsec analyze"


@dataclass
class Judgement:
    name: str
    requirement: str
    verdict: Verdict
    reason: str


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


def analyze(capture: Path, keys: list[SrtpKey], o1_ports: list[int]) -> tuple[Analyzer, float]:
    """One pass over the capture; returns the analyser and the seconds it took."""
    started = time.perf_counter()
    analyzer = Analyzer(keys, o1_ports)
    analyzer.feed_all(packets(capture))
    analyzer.finish()
    return analyzer, time.perf_counter() - started


def judge(a: Analyzer, o1_ports: list[int]) -> list[Judgement]:
    by_check: dict[str, list[Finding]] = {}
    for f in a.findings.values():
        by_check.setdefault(f.check, []).append(f)
    c = a.checks
    out = []

    def text(fs: list[Finding]) -> str:
        return "; ".join(f"{f.sentence} ({f.count} packets, e.g. frames {f.frames})" for f in fs)

    found = by_check.get("sdes-in-clear", [])
    out.append(
        Judgement(
            "No SDES key is sent over unprotected signalling",
            "R3",
            Verdict.FAIL if found else Verdict.PASS,
            text(found)
            if found
            else f"{c.sip_clear} SIP messages in the clear, none with a=crypto",
        )
    )

    if c.rtp + c.rtcp == 0 and not by_check.get("media-in-clear"):
        return out + _o1(a, by_check, o1_ports, text)  # no media: R3 media and R4 not judged
    found = by_check.get("media-in-clear", [])
    if found:
        verdict, reason = Verdict.FAIL, text(found)
    elif c.keyed_streams == 0:
        verdict = Verdict.INCONCLUSIVE
        reason = (
            f"{c.unkeyed_streams} RTP streams, none with a known key: give --keys (or "
            "--keylog) to judge whether each packet authenticates"
        )
    else:
        verdict = Verdict.PASS
        reason = (
            f"{c.rtp} RTP packets in {c.keyed_streams} keyed streams all authenticate; "
            f"{c.rtcp} RTCP packets are all SRTCP; {c.unkeyed_streams} streams had no key"
        )
    out.append(Judgement("No plain RTP or RTCP on media ports", "R3", verdict, reason))

    found = by_check.get("keystream-reuse", [])
    if found:
        verdict, reason = Verdict.FAIL, "; ".join(f.sentence for f in found)
    elif c.keyed_streams == 0:
        verdict, reason = Verdict.INCONCLUSIVE, "no stream with a known key: give --keys"
    else:
        verdict = Verdict.PASS
        reason = f"{c.keyed_streams} keyed streams, no (key, salt, SSRC) shared"
    out.append(Judgement("No key stream is reused", "R4", verdict, reason))
    return out + _o1(a, by_check, o1_ports, text)


def _o1(
    a: Analyzer, by_check: dict[str, list[Finding]], o1_ports: list[int], text: Any
) -> list[Judgement]:
    c = a.checks
    out = []
    if o1_ports or c.esp:
        found = by_check.get("o1-interfaces", [])
        if found:
            verdict, reason = Verdict.FAIL, text(found)
        elif c.o1_packets + c.esp == 0:
            verdict = Verdict.INCONCLUSIVE
            reason = f"no traffic on the interface ports {o1_ports} in the capture"
        else:
            verdict = Verdict.PASS
            reason = (
                f"{c.esp} ESP packets (encrypted), {c.o1_tls} TLS records on the "
                "interfaces; TLS protects the keys though NDS/IP asks for ESP"
            )
        out.append(
            Judgement(
                "The AS/MRFC/MRFP interfaces carry no key in the clear", "O1", verdict, reason
            )
        )
    return out


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
    from confsec.cli import exit_code

    capture = Path(args.capture)
    keys = load_keys(Path(args.keys)) if args.keys else []
    if args.keylog:
        from confsec.analyze.tlskeys import keys_from_tls

        keys += keys_from_tls(capture, Path(args.keylog))
    a, seconds = analyze(capture, keys, args.o1_port)
    judgements = judge(a, args.o1_port)
    doc = write_reports(Path(args.reports), capture, judgements, a, seconds)
    rate = a.frames / seconds if seconds else 0.0
    print(
        f"confsec analyze: {capture}: {a.frames} frames in {seconds:.2f} s "
        f"({rate:,.0f} frames/s), {len(keys)} keys"
    )
    for j in judgements:
        print(f"  {j.requirement:<3} {j.verdict!s:<13} {j.name}")
        if j.verdict is not Verdict.PASS:
            print(f"      {j.reason[:300]}")
    where = Path(args.reports).resolve()
    print(f"reports: {where}/verdicts.json, capture-findings.json, junit.xml")
    sys.stdout.flush()
    return exit_code(doc)
