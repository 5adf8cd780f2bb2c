"""confsec command line: `confsec run`, `confsec list`.

`run` drives pytest (pytest-bdd features) in a child interpreter so that a crash of a scenario
cannot take the command down with it, then reads `verdicts.json` and prints one summary table.
The exit code is computed from the verdicts, not from pytest's own code, because pytest has no
notion of inconclusive or not applicable.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from confsec import __version__
from confsec.cli.target import add_target_commands as _add_target_commands
from confsec.cli.target import check_target as _check_target
from confsec.errors import ConfigError
from confsec.reference.defects import DEFECTS, KEY_MANAGEMENT_MODES, parse_defects
from confsec.report import manifest
from confsec.report.conformance import SEVERITIES
from confsec.report.finalize import clean, default_signing_key, finalize
from confsec.report.waivers import Waiver, load_waivers
from confsec.requirements import REQUIREMENTS

EXIT_CONFORMANT = 0
EXIT_NONCONFORMANT = 1
EXIT_INCONCLUSIVE = 2
EXIT_USAGE = 3
EXIT_ERROR = 4

EPILOG = textwrap.dedent(
    """\
    examples:
      confsec run                               whole suite against the embedded reference
      confsec run --req R2 --req R3             only the scenarios of R2 and R3
      confsec run --defect accept-plain-rtp     against a reference with one defect switched on
      confsec run -n 2                          spread scenarios over two processes
      confsec list defects                      the defect switches of the reference
      confsec list requirements                 R1-R8 and O1-O7 with their strength
      confsec run --waivers waivers.toml        accepted deviations ([[waiver]] entries)
      confsec run --fail-on critical            only a failed `shall` requirement fails the run
      confsec report                            rebuild reports/ (findings, auditor, Allure HTML)
      confsec verify reports                    check the signed manifest, name altered files

    exit codes (confsec run / confsec report):
      0 conformant: every applicable requirement that was run passed (or was waived)
      1 non-conformant: a fail verdict at or above the --fail-on severity
      2 inconclusive: no fail and no error, but at least one inconclusive verdict
      3 usage or configuration error (bad option, target profile or waiver file)
      4 tool or environment error (error verdicts, unreachable target, the run broke)
    confsec verify: 0 intact, 1 a file was altered, missing or added, 3 usage error
    """
)


def project_root() -> Path:
    """The directory holding features/ and conftest.py (the suite ships as a source tree)."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (candidate / "features").is_dir() and (candidate / "conftest.py").is_file():
            return candidate
    raise ConfigError(
        "cannot find the confsec features: run confsec from the root of the confsec checkout "
        "(the directory with features/ and conftest.py)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="confsec",
        description="Conformance test suite for secure conferencing (3GPP TR 33.829 clause 5.1).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"confsec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the conformance scenarios and write reports/",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--defect",
        action="append",
        default=[],
        metavar="NAME",
        help="switch on a defect of the reference (repeatable; `confsec list defects`)",
    )
    run.add_argument(
        "--reference-key-management",
        choices=KEY_MANAGEMENT_MODES,
        default="sdes",
        help="how the embedded reference keys SRTP: sdes (a=crypto) or dtls-srtp (RFC 5764)",
    )
    run.add_argument(
        "--req",
        action="append",
        default=[],
        metavar="ID",
        help="only this requirement (repeatable)",
    )
    run.add_argument(
        "--reports", default="reports", metavar="DIR", help="output directory (default: reports)"
    )
    run.add_argument(
        "-n", "--processes", default=None, metavar="N", help="pytest-xdist processes (or 'auto')"
    )
    run.add_argument("-k", dest="keyword", default=None, help="pytest -k expression on scenarios")
    _add_report_options(run)
    run.add_argument(
        "--evidence",
        default=None,
        metavar="DIR",
        help="raw evidence bundle (full pcap, TLS key log, SRTP keys); default: evidence/ "
        "beside the reports directory",
    )
    run.add_argument(
        "pytest_args", nargs="*", metavar="-- PYTEST_ARGS", help="extra arguments for pytest"
    )

    run.add_argument(
        "--target",
        default=None,
        metavar="FILE",
        help="target profile (TOML) of the system under test",
    )
    _add_target_commands(sub)  # confsec.cli.target: reference serve, analyze, probe

    rpt = sub.add_parser(
        "report",
        help="rebuild findings, auditor report and the one-file Allure HTML from a reports dir",
    )
    rpt.add_argument("--reports", default="reports", metavar="DIR", help="default: reports")
    rpt.add_argument("--evidence", default=None, metavar="DIR", help="default: beside reports")
    _add_report_options(rpt)
    ver = sub.add_parser("verify", help="check a reports or evidence directory's signed manifest")
    ver.add_argument("directory", metavar="DIR")
    ver.add_argument(
        "--public-key", default=None, metavar="PEM", help="require this signer (Ed25519 PEM)"
    )

    lst = sub.add_parser("list", help="list requirements, defects or scenarios")
    lst.add_argument("what", choices=["requirements", "defects"], help="what to list")
    return parser


def _add_report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--waivers", default=None, metavar="FILE", help="TOML file of accepted deviations"
    )
    p.add_argument(
        "--fail-on",
        default="minor",
        choices=SEVERITIES,
        help="lowest severity of a fail that makes the run non-conformant (default: minor, "
        "i.e. any fail; critical = only shall requirements)",
    )
    p.add_argument(
        "--signing-key",
        default=None,
        metavar="PEM",
        help="Ed25519 key that signs the manifests (default: ~/.config/confsec/signing-key.pem, "
        "created on first use)",
    )
    p.add_argument(
        "--no-allure-html",
        dest="allure_html",
        action="store_false",
        help="skip the one-file Allure HTML",
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "verify":
            return cmd_verify(args)
        if args.command in ("reference", "analyze", "probe"):
            return args.handler(args)
        if args.command == "list":
            return cmd_list(args)
    except ConfigError as exc:
        print(f"confsec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    parser.print_help()
    return EXIT_USAGE


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "requirements":
        for r in REQUIREMENTS:
            print(f"{r.id:<3} {r.strength:<12} {r.title}")
    else:
        for d in DEFECTS:
            print(f"{d.name:<30} {d.requirement:<3} {d.description}")
    return EXIT_CONFORMANT


def _waivers(args: argparse.Namespace) -> list[Waiver]:
    """The waiver file, checked in full before anything runs (a mistake is a usage error)."""
    return load_waivers(args.waivers) if args.waivers else []


def _evidence_dir(args: argparse.Namespace, reports: Path) -> Path:
    return Path(args.evidence).resolve() if args.evidence else reports.parent / "evidence"


def cmd_run(args: argparse.Namespace) -> int:
    defects = parse_defects(args.defect, args.reference_key_management)
    waivers = _waivers(args)
    target_label = _check_target(args, defects)  # validates the profile before pytest starts
    known = {r.id for r in REQUIREMENTS}
    bad = [r for r in args.req if r.upper() not in known]
    if bad:
        raise ConfigError(f"unknown requirement {', '.join(bad)}; known: R1-R8, O1-O7")
    root = project_root()
    reports = Path(args.reports).resolve()
    reports.mkdir(parents=True, exist_ok=True)
    evidence = _evidence_dir(args, reports)
    clean(reports, evidence)
    evidence.mkdir(parents=True, exist_ok=True)
    verdicts_file = reports / "verdicts.json"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(root / "features"),
        "--rootdir",
        str(root),
        "-c",
        str(root / "pyproject.toml"),
        "-q",
        "--no-header",
        "-p",
        "no:cacheprovider",
        "--confsec-progress",
        "--reports",
        str(reports),
        "--evidence",
        str(evidence),
        "--alluredir",
        str(reports / "allure-results"),
        "--clean-alluredir",
        "--junitxml",
        str(reports / "junit.xml"),
        "-o",
        "junit_family=xunit2",
    ]
    if args.target:
        cmd += ["--target", str(Path(args.target).resolve())]
    for name in sorted(defects):
        cmd += ["--defect", name]
    if args.reference_key_management != "sdes":
        cmd += ["--reference-key-management", args.reference_key_management]
    for req in args.req:
        cmd += ["--req", req.upper()]
    if args.processes:
        cmd += ["-n", str(args.processes)]
    if args.keyword:
        cmd += ["-k", args.keyword]
    # The verdict table says why each scenario failed; pytest's tracebacks of the suite's own
    # frames only bury it. `-- --tb=short` (a later option wins) brings them back.
    cmd += ["--tb=no", "-rN", *args.pytest_args]
    label = f"defects: {', '.join(sorted(defects))}" if defects else "compliant"
    print(
        f"confsec {__version__}: running against {target_label or 'the embedded reference'} "
        f"({label})",
        flush=True,
    )
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(cmd, cwd=root, env=env)
    if not verdicts_file.exists():
        print(
            f"confsec: error: the run produced no verdicts (pytest exit {proc.returncode}); "
            "see the output above",
            file=sys.stderr,
        )
        return EXIT_USAGE if proc.returncode == 4 else EXIT_ERROR  # pytest 4 = usage error
    return _finish(args, reports, evidence, waivers, root)


def _finish(
    args: argparse.Namespace, reports: Path, evidence: Path, waivers: list[Waiver], root: Path
) -> int:
    """Waivers, findings, auditor report, Allure HTML and manifests; then the summary."""
    started = time.perf_counter()
    outcome = finalize(
        reports,
        evidence,
        root=root,
        argv=args.argv,
        waivers=waivers,
        fail_on=args.fail_on,
        signing_key=Path(args.signing_key) if args.signing_key else default_signing_key(),
        parameters={
            "defects": list(getattr(args, "defect", [])),
            "requirements selected": list(getattr(args, "req", [])) or "all",
            "fail on": args.fail_on,
            "waivers": str(args.waivers) if args.waivers else "none",
            "target profile": str(getattr(args, "target", None) or "embedded reference"),
        },
        allure_html=args.allure_html,
    )
    print_summary(outcome.doc, reports)
    if any(s["verdict"] == "error" for r in outcome.doc["requirements"] for s in r["scenarios"]):
        print(
            "confsec: an error verdict is trouble of the suite or the environment, not a "
            "finding: rerun its scenario with `-k NAME -- --tb=short` to see the traceback",
            file=sys.stderr,
        )
    for note in outcome.notes:
        print(f"confsec: note: {note}", file=sys.stderr)
    timing = ", ".join(f"{k} {v:.2f}s" for k, v in outcome.timings.items())
    print(f"reports written in {time.perf_counter() - started:.2f}s ({timing})")
    print(f"overall: {outcome.assessment.label}: {outcome.assessment.statement}")
    return outcome.assessment.exit_code


def cmd_report(args: argparse.Namespace) -> int:
    waivers = _waivers(args)
    reports = Path(args.reports).resolve()
    if not (reports / "verdicts.json").is_file():
        raise ConfigError(f"{reports}: no verdicts.json (run `confsec run` first)")
    return _finish(args, reports, _evidence_dir(args, reports), waivers, project_root())


def cmd_verify(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    if not directory.is_dir():
        raise ConfigError(f"{directory}: not a directory")
    trusted = manifest.load_public_key(Path(args.public_key)) if args.public_key else None
    problems = manifest.verify(directory, trusted)
    if not problems:
        print(f"{directory}: intact (every file matches the signed manifest)")
        return EXIT_CONFORMANT
    for problem in problems:
        print(f"{directory}: {problem}", file=sys.stderr)
    return EXIT_NONCONFORMANT


def print_summary(doc: dict, reports: Path) -> None:
    print()
    print(f"{'requirement':<12}{'strength':<13}{'verdict':<16}{'scenarios':<10}title")
    print("-" * 96)
    for r in doc["requirements"]:
        n = len(r["scenarios"])
        counts: dict[str, int] = {}
        for s in r["scenarios"]:
            counts[s["verdict"]] = counts.get(s["verdict"], 0) + 1
        detail = f"{counts.get('pass', 0)}/{n}" if n else "-"
        print(f"{r['id']:<12}{r['strength']:<13}{r['verdict']:<16}{detail:<10}{r['title'][:50]}")
        for s in r["scenarios"]:
            if s["verdict"] not in ("pass", "not applicable"):
                print(f"{'':<12}  {s['verdict']}: {s.get('title') or s['name']}")
                if s["reason"]:
                    print(f"{'':<14}{s['reason'].splitlines()[0][:140]}")
    print("-" * 96)
    summary = ", ".join(f"{v}: {n}" for v, n in sorted(doc["summary"].items()))
    print(f"requirements by verdict: {summary}")
    print(
        f"reports: {reports}/ auditor-report.html, auditor-report.json, findings.json, "
        "verdicts.json, junit.xml, allure-results/, allure-report/index.html, MANIFEST.json"
    )
