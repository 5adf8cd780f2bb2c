"""Capture analysis (`confsec analyze`): R3, R4, O1 and DTLS-SRTP (R2) judged from a capture."""

from confsec.analyze.checks import Analyzer
from confsec.analyze.command import analyze, judge, load_keys, write_reports
from confsec.analyze.findings import Finding, SrtpKey, Unjudged
from confsec.analyze.pcap import Packet, TcpPacket, packets

__all__ = [
    "Analyzer",
    "Finding",
    "Packet",
    "SrtpKey",
    "TcpPacket",
    "Unjudged",
    "analyze",
    "judge",
    "load_keys",
    "packets",
    "write_reports",
]
