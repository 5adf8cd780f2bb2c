"""Mutation fuzz of the embedded reference's network entry points while a conference runs.

Does the reference stay up and keep serving the other participants when someone throws garbage
at it? `fuzz_codecs.py` shows the parsers survive bytes in memory; this driver goes through the
real sockets, where a parser error meets transactions, dialogs, the floor server's bindings and
the mixer's per-leg state. It starts the reference on loopback (`EmbeddedReference`), sets up a
live conference (alice creates, bob joins with BFCP, both send tones under SRTP) and a fuzzing
participant, mallory, who is admitted like anyone else. Then, per entry point, it sends
mutations (`confsec.fuzz.mutate`, as `fuzz_codecs.py` does) of real, valid inputs:

- ``sip``: requests over mallory's own TLS connection to the focus: INVITE with SDP, re-INVITE
  and BYE in mallory's dialog, SUBSCRIBE, OPTIONS. Each is rebuilt with a fresh branch, Call-ID
  and CSeq before it is mutated, so the server never sees a retransmission; when the server
  closes the connection (lost framing) or leaves it waiting, the driver reconnects.
- ``sdp``: mutated offers inside authenticated INVITEs to the conference URI (a UA of its own
  answers each digest challenge). An offer that is admitted is left again at once with BYE.
- ``bfcp``: mutated BFCP messages (Hello, FloorRequest, FloorRelease, FloorQuery, ...) carrying
  mallory's conference and user ids, over a TLS connection opened with mallory's certificate, as
  the answer's a=fingerprint binds it. Half get their Payload Length fixed so that they frame
  and reach the message decoder; the others test the framing.
- ``srtp``: datagrams to the mixer's ports: mutations of captured SRTP, random and truncated
  datagrams to alice's and bob's legs (an off-path attacker), and RTP with a malformed header or
  payload protected under mallory's own key to mallory's legs (authenticated, so it reaches the
  mixer's RTP parsing, mixing and video switching).

After every input (a burst of datagrams for SRTP) a valid OPTIONS on a separate connection must
be answered within ``--hang`` seconds (and for BFCP a valid Hello on a separate BFCP
connection): an input after which it is not is a *hang* (no answer) or *down* (the connection was
refused or closed), and the input is saved under ``--out``. After each batch, and at the end, the
service check: alice and bob exchange tones, each hears the other and every packet each received
since the last check authenticated; on bob's BFCP connection Hello is answered, bob's floor
request is granted and his release confirmed; and a new participant (carol) is admitted with an
SRTP answer and gets a HelloAck from the floor server, then leaves. Tracebacks logged on the
reference's loop thread and calls of its loop's exception handler are counted as reference
exceptions.

    python benchmarks/fuzz_reference.py --inputs 20000

The driver is `confsec.fuzz` (one module per entry point); the regression test
`tests/fuzz/test_fuzz_entry_points.py` runs it with a few dozen inputs per entry point, and
against the reference's crash defect switches to show that it notices a reference that falls
over.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

# Run from a checkout without installing: the repository root holds the confsec package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confsec.fuzz.fuzzer import ENTRY_POINTS, ReferenceFuzzer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--inputs", type=int, default=2000, help="inputs per entry point")
    ap.add_argument("--batch", type=int, default=1000, help="inputs between service checks")
    ap.add_argument("--hang", type=float, default=2.0, help="seconds that count as a hang")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", choices=ENTRY_POINTS, action="append")
    ap.add_argument("--defect", action="append", default=[], help="a reference defect switch")
    ap.add_argument("--out", type=Path, default=Path("fuzz-crashes/reference"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="confsec-fuzz-") as tmp:
        fuzzer = ReferenceFuzzer(
            Path(tmp),
            defects=frozenset(args.defect),
            seed=args.seed,
            hang_s=args.hang,
            out=args.out,
        )
        started = time.perf_counter()
        try:
            fuzzer.start()
            report = fuzzer.run(
                args.inputs,
                args.batch,
                tuple(args.only or ENTRY_POINTS),
                progress=lambda line: print(line, flush=True),
            )
        finally:
            fuzzer.close()
    print(report.table())
    print(f"wall time {time.perf_counter() - started:.0f} s")
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
