"""Mutation fuzzers: of the sans-IO parsers in memory (`codecs`), and of the embedded
reference's network entry points while a conference runs (`fuzzer`, one module per entry
point: `sip`, `sdp`, `bfcp`, `srtp`, over the shared `harness` and `service` check).

The package sits at the top of the layering: it drives the reference (`confsec.reference`)
with the suite's own participants (`confsec.behaviour`), so nothing in confsec but the CLI may
import it.

The command-line runs are `benchmarks/fuzz_codecs.py` and `benchmarks/fuzz_reference.py`.
"""
