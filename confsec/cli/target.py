"""The commands about a system under test: `confsec reference serve`, `confsec analyze`,
`confsec probe` and the `--target` check.

Kept apart from the main CLI so that the heavy imports (the reference, the capture analyser)
happen only when such a command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from confsec.errors import ConfigError
from confsec.reference.defects import KEY_MANAGEMENT_MODES
from confsec.reference.operator import ACTIONS as OPERATOR_ACTIONS


def add_target_commands(sub: Any) -> None:
    """Register `reference serve` and `analyze` on the main parser's subcommands."""
    ref = sub.add_parser("reference", help="run the embedded reference as a stand-alone target")
    ref_sub = ref.add_subparsers(dest="reference_command", metavar="ACTION", required=True)
    serve = ref_sub.add_parser(
        "serve", help="start the reference in the foreground and write its target profile"
    )
    serve.add_argument("--defect", action="append", default=[], metavar="NAME")
    serve.add_argument("--write-profile", default=None, metavar="FILE", help="profile to write")
    serve.add_argument(
        "--env-file", default=None, metavar="FILE", help="where to write the password variables"
    )
    serve.add_argument("--workdir", default=None, metavar="DIR", help="PKI and key logs")
    serve.add_argument(
        "--evidence", default=None, metavar="DIR", help="where its TLS key log goes (--workdir)"
    )
    serve.add_argument(
        "--interop",
        action="append",
        default=[],
        metavar="FLAG",
        help="relax the focus for third-party UAs: digest-md5, digest-md5-only, sip-over-tls "
        "(no longer conformant; see the README on baresip)",
    )
    serve.add_argument(
        "--key-management",
        choices=KEY_MANAGEMENT_MODES,
        default="sdes",
        help="how the reference keys SRTP: sdes (a=crypto, RFC 4568) or dtls-srtp (RFC 5764)",
    )
    op = ref_sub.add_parser(
        "operator",
        help="an operator action on a running reference (the adapter command of a profile "
        "that claims only dial-out)",
        description="Parameters come from the variables the suite sets for an adapter: "
        "CONFSEC_CREATOR, CONFSEC_CONFERENCE, CONFSEC_AOR, CONFSEC_CONTACT. Example: "
        "CONFSEC_CONFERENCE=sips:conf-1@conference.example.test CONFSEC_AOR=sips:bob@"
        "conference.example.test CONFSEC_CONTACT='sips:bob@127.0.0.1:40123' confsec reference "
        "operator --socket /tmp/ref/operator.sock add-participant",
    )
    op.add_argument("action", choices=OPERATOR_ACTIONS)
    op.add_argument(
        "--socket", required=True, metavar="PATH", help="the console `reference serve` printed"
    )
    ref.set_defaults(handler=_cmd_reference)

    ana = sub.add_parser("analyze", help="check a capture a vendor recorded (R3, R4, O1)")
    ana.add_argument("capture", metavar="CAPTURE.pcap")
    ana.add_argument(
        "--keylog",
        default=None,
        metavar="FILE",
        help="NSS key log: SIP over TLS (tshark decrypts it), DTLS-SRTP CLIENT_RANDOM (media keys)",
    )
    ana.add_argument("--keys", default=None, metavar="FILE", help="SRTP keys (JSON or inline)")
    ana.add_argument(
        "--o1-port",
        action="append",
        default=[],
        type=int,
        metavar="PORT",
        help="TCP/UDP port of an AS/MRFC/MRFP interface to judge for O1 (repeatable)",
    )
    ana.add_argument("--reports", default="reports", metavar="DIR", help="output directory")
    ana.set_defaults(handler=_cmd_analyze)

    probe = sub.add_parser("probe", help="sipvicious on UDP listeners, own probes over TLS")
    probe.add_argument("--target", required=True, metavar="FILE", help="target profile (TOML)")
    probe.add_argument("--reports", default="reports", metavar="DIR", help="output directory")
    probe.add_argument("--timeout", type=float, default=60.0, help="per sipvicious run, seconds")
    probe.set_defaults(handler=_cmd_probe)


def check_target(args: argparse.Namespace, defects: frozenset[str]) -> str | None:
    """Validate `--target` before pytest starts, so a bad profile costs no child process."""
    if not getattr(args, "target", None):
        return None
    from confsec.target.profile import load_profile

    if defects:
        raise ConfigError("--defect switches the embedded reference; it cannot go with --target")
    target = load_profile(args.target)
    return f"{target.name} ({args.target})"


def _cmd_reference(args: argparse.Namespace) -> int:
    if args.reference_command == "operator":
        from confsec.reference.operator import adapter_main

        return adapter_main(Path(args.socket), args.action, dict(os.environ))
    return _cmd_serve(args)


def _cmd_serve(args: argparse.Namespace) -> int:
    from confsec.reference.defects import parse_defects
    from confsec.reference.serve import serve

    return serve(
        parse_defects(args.defect, args.key_management),
        Path(args.write_profile) if args.write_profile else None,
        Path(args.env_file) if args.env_file else None,
        Path(args.workdir) if args.workdir else None,
        interop=frozenset(args.interop),
        evidence_dir=Path(args.evidence) if args.evidence else None,
        key_management=args.key_management,
    )


def _cmd_analyze(args: argparse.Namespace) -> int:
    from confsec.analyze.command import run_analyze

    return run_analyze(args)


def _cmd_probe(args: argparse.Namespace) -> int:
    import json

    from confsec.behaviour.probes import tls_probes
    from confsec.behaviour.udp_probes import sipvicious_probes
    from confsec.target.profile import load_profile

    target = load_profile(args.target)
    reports = Path(args.reports)
    reports.mkdir(parents=True, exist_ok=True)
    # Every probe the profile makes possible: sipvicious per UDP listener, then TLS.
    users = [a.username for a in target.accounts.values()]
    found = []
    for listener in target.listeners:
        if listener.transport == "udp":
            found += sipvicious_probes(listener, users, target.probe_dictionary, args.timeout)
    keylog = str(reports / "probe-tls-keylog.txt")
    found += asyncio.run(tls_probes(target, target.probe_dictionary, keylog))
    (reports / "probes.json").write_text(json.dumps([f.as_dict() for f in found], indent=2))
    for f in found:
        print(f"{f.severity:<13} {f.probe:<16} {f.listener:<24} {f.sentence}")
    udp = sum(ln.transport == "udp" for ln in target.listeners)
    print(
        f"probed {udp} UDP listeners and the TLS service; {len(found)} findings; "
        f"{reports / 'probes.json'}"
    )
    if any(f.severity == "fail" for f in found):
        return 1
    return 2 if any(f.severity == "inconclusive" for f in found) else 0
