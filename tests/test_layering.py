"""The package's imports only point down, and no module imports itself back.

The layer list is read from docs/DESIGN.md (the block between `<!-- layers -->` markers), so
the design and this test cannot drift apart. Every import counts: at module level, inside
functions, and under `if TYPE_CHECKING:`, because a type-only cycle still ties two modules'
designs together. A package may import its own modules and any package of a lower layer;
packages of one layer are rooms side by side and may not import each other (the reference and
the checks, above all: the checks know a system under test only through its profile, and the
reference must not lean on the suite that judges it).
"""

from __future__ import annotations

import ast
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs" / "DESIGN.md"


# -- reading the design -------------------------------------------------------------------------


def read_layers(design: Path = DESIGN) -> list[list[str]]:
    """The layers, bottom first, each a list of dotted package or module names."""
    text = design.read_text(encoding="utf-8")
    match = re.search(r"<!-- layers -->\s*```[a-z]*\n(.*?)```\s*<!-- /layers -->", text, re.S)
    if match is None:
        raise AssertionError(f"{design} has no ```-block between <!-- layers --> markers")
    layers: dict[int, list[str]] = {}
    for line in match.group(1).splitlines():
        fields = line.split()
        if fields and fields[0].isdigit():
            layers[int(fields[0])] = [f for f in fields[1:] if f.startswith("confsec")]
    return [layers[k] for k in sorted(layers)]


# -- reading the code ---------------------------------------------------------------------------


def modules(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package (packages by __init__)."""
    out = {}
    base = package_dir.parent
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(imported confsec module, line) for every import in the file, wherever it sits."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _resolve(alias.name, (), known, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield from _resolve(module, [a.name for a in node.names], known, node.lineno)


def _resolve(module: str, names, known: dict[str, Path], line: int) -> Iterator[tuple[str, int]]:
    if module != "confsec" and not module.startswith("confsec."):
        return
    submodules = [f"{module}.{n}" for n in names if f"{module}.{n}" in known]
    if submodules:  # `from confsec.behaviour import rekeying`: the submodule is what is used
        for sub in submodules:
            yield sub, line
        if len(submodules) == len(names):
            return
    while module not in known and "." in module:
        module = module.rpartition(".")[0]
    yield module, line


def graph(package_dir: Path) -> dict[str, dict[str, int]]:
    """module -> {imported module: first line}."""
    known = modules(package_dir)
    edges: dict[str, dict[str, int]] = {}
    for name, path in known.items():
        edges[name] = {}
        for target, line in imports(name, path, known):
            if target != name:
                edges[name].setdefault(target, line)
    return edges


# -- judging ------------------------------------------------------------------------------------


def room_of(module: str, layers: list[list[str]]) -> tuple[int, str] | None:
    """(layer index, room) of a module: the longest listed name that is it or contains it. The
    root package is a room of its own module only (its `__version__`), not of everything."""
    best: tuple[int, str] | None = None
    for index, rooms in enumerate(layers):
        for room in rooms:
            if module == room or (room != "confsec" and module.startswith(room + ".")):
                if best is None or len(room) > len(best[1]):
                    best = (index, room)
    return best


def upward_edges(package_dir: Path, layers: list[list[str]]) -> list[str]:
    """Every import that runs up a layer or sideways into another room, as readable lines."""
    problems = []
    for source, targets in sorted(graph(package_dir).items()):
        here = room_of(source, layers)
        if here is None:
            problems.append(f"{source} is in no layer of docs/DESIGN.md")
            continue
        for target, line in sorted(targets.items()):
            there = room_of(target, layers)
            if there is None or there[1] == here[1] or there[0] < here[0]:
                continue
            way = "up" if there[0] > here[0] else "sideways"
            problems.append(
                f"{source} (line {line}) imports {target}: {way} from layer {here[0]} "
                f"({here[1]}) to layer {there[0]} ({there[1]})"
            )
    return problems


def cycles(package_dir: Path) -> list[list[str]]:
    """Strongly connected sets of more than one module (Tarjan)."""
    edges = graph(package_dir)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


# -- the tests ----------------------------------------------------------------------------------


def test_every_import_points_down() -> None:
    problems = upward_edges(ROOT / "confsec", read_layers())
    assert not problems, "imports against the layering of docs/DESIGN.md:\n" + "\n".join(problems)


def test_no_import_cycles() -> None:
    found = cycles(ROOT / "confsec")
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("confsec.reference", "confsec.behaviour"),
        ("confsec.reference", "confsec.report"),
        ("confsec.behaviour", "confsec.reference"),
    ],
)
def test_the_design_keeps_the_reference_apart(module: str, forbidden: str) -> None:
    """Whatever the layer list says, the system under test never imports the suite's checks or
    reports, and the checks never import the reference (they must work on any target)."""
    layers = read_layers()
    a, b = room_of(module, layers), room_of(forbidden, layers)
    assert a is not None and b is not None
    assert a[1] != b[1] and not (b[0] < a[0]), f"docs/DESIGN.md lets {module} import {forbidden}"


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    """The check can fail: a copy of the package in which the reference imports the reports
    (up) and the checks (sideways) is refused, naming each line; so is a cycle added inside the
    reference."""
    copy = tmp_path / "confsec"
    shutil.copytree(ROOT / "confsec", copy, ignore=shutil.ignore_patterns("__pycache__"))
    defects = copy / "reference" / "defects.py"
    defects.write_text(
        defects.read_text(encoding="utf-8")
        + "\nfrom confsec.report import verdicts  # noqa\n"
        + "from confsec.behaviour import checks  # noqa\n",
        encoding="utf-8",
    )
    problems = [p for p in upward_edges(copy, read_layers()) if p.startswith("confsec.reference")]
    assert len(problems) == 2, problems
    assert "imports confsec.report.verdicts: up from layer 5" in problems[1]
    assert "imports confsec.behaviour.checks: sideways" in problems[0]

    (copy / "reference" / "a_.py").write_text("from confsec.reference import b_\n")
    (copy / "reference" / "b_.py").write_text("from confsec.reference import a_\n")
    assert ["confsec.reference.a_", "confsec.reference.b_"] in cycles(copy)


def test_every_module_is_in_a_layer() -> None:
    layers = read_layers()
    unplaced = [m for m in modules(ROOT / "confsec") if room_of(m, layers) is None]
    assert not unplaced, f"modules in no layer of docs/DESIGN.md: {unplaced}"


MODULE_LINES = 500
"""The house limit on a module's length: past it, a module usually holds more than one idea."""
LONGER_MODULES = {
    "confsec/net/ua.py": (
        530,
        "the user agent's public entry points (start, request, request_exchange, invite) carry "
        "long signatures and docstrings; splitting them further would leave one-line delegates",
    ),
    "confsec/media/dtls.py": (
        515,
        "one class over one OpenSSL connection (its pure half is dtls_records.py already); what "
        "dtls_demux reads of an association (expects, client_random, finished_sent) is its state",
    ),
}
"""Modules allowed past the limit, each with its ceiling and the reason."""


def test_modules_stay_small() -> None:
    long = {}
    for path in sorted((ROOT / "confsec").rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        ceiling = LONGER_MODULES.get(name, (MODULE_LINES, ""))[0]
        if lines > ceiling:
            long[name] = lines
    assert not long, f"modules over {MODULE_LINES} lines (split them, or name the reason): {long}"
