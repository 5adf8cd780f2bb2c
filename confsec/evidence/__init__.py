"""Evidence: what the suite saw, written twice.

Redacted, for the reports an auditor reads (`reports/evidence/<scenario>/`: SIP ladder, key-stream
ledger without keys, pcap slice with SDES keys blanked, measured numbers), and raw, for the
access-controlled bundle (`evidence/`: full pcap, TLS key log, SRTP keys, the inventory of every
secret the run used, so that a scan can prove none of them leaked into the reports).
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["scenario_slug"]


def scenario_slug(nodeid: str) -> str:
    """A short, stable directory name for one scenario (readable part + hash of the node id).

    The hash keeps outline examples apart and the name stays well under path limits.
    """
    name = nodeid.split("::")[-1].removeprefix("test_")
    readable = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:60]
    return f"{readable}-{hashlib.sha256(nodeid.encode()).hexdigest()[:8]}"
