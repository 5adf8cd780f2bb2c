"""confsec command line: `confsec run`, `confsec list`.

`run` drives pytest (pytest-bdd features) in a child interpreter so that a crash of a scenario
cannot take the command down with it, then reads `verdicts.json` and prints one summary table.
The exit code is computed from the verdicts, not from pytest's own code, because pytest has no
notion of inconclusive or not applicable.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from confsec import __version__
from confsec.errors import ConfigError
from confsec.reference.defects import DEFECTS, parse_defects
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

    exit codes:
      0 conformant: every applicable requirement that was run passed
      1 non-conformant: at least one fail verdict
      2 inconclusive: no fail, but at least one inconclusive verdict
      3 usage or configuration error
      4 tool or environment error (error verdicts, or the run itself broke)
    """
)


def project_root() -> Path:
    """The directory holding features/ and conftest.py (the suite ships as a source tree)."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parent.parent):
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
    run.add_argument(
        "pytest_args", nargs="*", metavar="-- PYTEST_ARGS", help="extra arguments for pytest"
    )

    lst = sub.add_parser("list", help="list requirements, defects or scenarios")
    lst.add_argument("what", choices=["requirements", "defects"], help="what to list")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
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


def cmd_run(args: argparse.Namespace) -> int:
    defects = parse_defects(args.defect)
    known = {r.id for r in REQUIREMENTS}
    bad = [r for r in args.req if r.upper() not in known]
    if bad:
        raise ConfigError(f"unknown requirement {', '.join(bad)}; known: R1-R8, O1-O7")
    root = project_root()
    reports = Path(args.reports).resolve()
    reports.mkdir(parents=True, exist_ok=True)
    verdicts_file = reports / "verdicts.json"
    verdicts_file.unlink(missing_ok=True)
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
        "--alluredir",
        str(reports / "allure-results"),
        "--clean-alluredir",
        "--junitxml",
        str(reports / "junit.xml"),
        "-o",
        "junit_family=xunit2",
    ]
    for name in sorted(defects):
        cmd += ["--defect", name]
    for req in args.req:
        cmd += ["--req", req.upper()]
    if args.processes:
        cmd += ["-n", str(args.processes)]
    if args.keyword:
        cmd += ["-k", args.keyword]
    cmd += args.pytest_args
    label = f"defects: {', '.join(sorted(defects))}" if defects else "compliant"
    print(f"confsec {__version__}: running against the embedded reference ({label})", flush=True)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(cmd, cwd=root, env=env)
    if not verdicts_file.exists():
        print(
            f"confsec: error: the run produced no verdicts (pytest exit {proc.returncode}); "
            "see the output above",
            file=sys.stderr,
        )
        return EXIT_USAGE if proc.returncode in (3, 4) else EXIT_ERROR
    doc = json.loads(verdicts_file.read_text())
    print_summary(doc, reports)
    return exit_code(doc)


def exit_code(doc: dict) -> int:
    verdicts = {r["verdict"] for r in doc["requirements"]}
    if "fail" in verdicts:
        return EXIT_NONCONFORMANT
    if "error" in verdicts:
        return EXIT_ERROR
    if "inconclusive" in verdicts:
        return EXIT_INCONCLUSIVE
    return EXIT_CONFORMANT


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
                print(f"{'':<12}  {s['verdict']}: {s['name']}")
                if s["reason"]:
                    print(f"{'':<14}{s['reason'].splitlines()[0][:140]}")
    print("-" * 96)
    summary = ", ".join(f"{v}: {n}" for v, n in sorted(doc["summary"].items()))
    print(f"requirements by verdict: {summary}")
    print(f"reports: {reports}/verdicts.json, junit.xml, allure-results/")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
