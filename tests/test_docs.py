"""What users read: the README and the documentation site's pages, and the package's
requirements. The site itself is built (strict, tutorials executed) by ``bash .ci/test``."""

from __future__ import annotations

import configparser
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
# the pages of the site, the README and the provenance shipped with each network
PAGES = sorted([REPO / "README.md", *DOCS.rglob("*.md"), *(REPO / "l0emu" / "data").glob("*/PROVENANCE.md")])
ISSUE = re.compile(r"\bissues?[\s-]*#?\d+", re.IGNORECASE)
MACHINE_PATH = re.compile(r"(?<![\w.])(/work/|/tmp/|/root/|/home/)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
URL = re.compile(r"\b(https?|ftp)://", re.IGNORECASE)
# a file of the repository named in running text, e.g. `l0emu/trigger/sector.py`
REPO_FILE = re.compile(r"(?<![\w/.])((?:l0emu|simulation|firmware|validation|tests|docs)/[\w/.-]*\w\.(?:py|md|json|yml|sh|csv|png))")


def _docgen():
    sys.path.insert(0, str(DOCS / "_gen"))
    try:
        import docgen
    finally:
        sys.path.remove(str(DOCS / "_gen"))
    return docgen


def _where(path: Path, text: str, match) -> str:
    line = text.count("\n", 0, match.start()) + 1
    return f"{path.relative_to(REPO)}:{line}: {match.group(0)!r}"


def test_readme_is_short():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    assert len(text.encode()) <= 15_000


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_page_names_no_issue_no_machine_path_no_outside_link(path):
    text = path.read_text(encoding="utf-8")
    bad = [_where(path, text, m) for pattern in (ISSUE, MACHINE_PATH, URL) for m in pattern.finditer(text)]
    for match in LINK.finditer(text):
        target = match.group(1).split("#", 1)[0]
        if not target:
            continue  # an anchor on the same page
        resolved = (path.parent / target).resolve()
        if not resolved.is_relative_to(REPO) or not resolved.exists():
            bad.append(_where(path, text, match) + " does not resolve inside the repository")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_files_a_page_names_exist(path):
    """Modules moved into subpackages must not leave their old paths behind in the pages."""
    text = path.read_text(encoding="utf-8")
    missing = [_where(path, text, m) for m in REPO_FILE.finditer(text) if not (REPO / m.group(1)).exists()]
    assert not missing, "\n".join(missing)


def _requirements() -> dict:
    """Section -> requirement strings of setup.cfg (install_requires and every extra)."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg", encoding="utf-8")

    def lines(value):
        return [line.strip() for line in value.splitlines() if line.strip() and not line.strip().startswith("#")]

    found = {"install_requires": lines(config["options"]["install_requires"])}
    found.update({f"extra {name}": lines(value) for name, value in config["options.extras_require"].items()})
    return found


def _pins() -> dict:
    pins = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"constraints.txt: {line!r} is not an exact pin"
        pins[_normal(requirement.name)] = specifiers[0].version
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_no_requirement_is_an_exact_pin_and_the_pins_satisfy_the_ranges():
    pins = _pins()
    for section, lines in _requirements().items():
        assert lines, section
        for line in lines:
            requirement = Requirement(line)
            operators = {s.operator for s in requirement.specifier}
            assert not operators & {"==", "==="}, f"setup.cfg {section}: {line!r} is an exact pin; pins belong in constraints.txt"
            assert ">=" in operators, f"setup.cfg {section}: {line!r} has no lower bound (the version tested)"
            name = _normal(requirement.name)
            assert name in pins, f"setup.cfg {section}: {line!r} is not pinned in constraints.txt"
            assert requirement.specifier.contains(pins[name]), f"constraints.txt pins {name}=={pins[name]}, outside {line!r}"


def test_readme_shipped_student_table_is_the_committed_rate_files():
    """The README's table of the shipped student equals what the results page generates
    from docs/results/default_student/*_rates.json."""
    import json

    docgen = _docgen()
    table = docgen.shipped_table({
        "default": "docs/results/default_student/test_default_rates.json",
        "hard": "docs/results/default_student/test_hard_rates.json",
    })
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert table in readme
    record = json.loads((REPO / "l0emu/data/default_student/training_record.json").read_text())
    assert f"({record['model']['parameters']:,} parameters, its `training_record.json`)" in readme


def test_cli_reference_shows_every_verb_and_benchmark():
    from l0emu.cli import dispatch

    reference = _docgen().cli_reference()
    for name in dispatch.VERBS:
        assert f"## `l0emu {name}`" in reference, name
    for name in dispatch.benchmarks():
        assert f"## `l0emu bench {name}`" in reference, name
    assert "usage: l0emu run" in reference and "--thresholds" in reference


def test_navigation_patterns_pick_up_pages_by_name():
    """mkdocs.yml lists supported_ops*.md and bench/**/*.md as patterns: pages added under
    those names join the site's navigation without an edit (docs/_gen/hooks.py)."""
    sys.path.insert(0, str(DOCS / "_gen"))
    try:
        import hooks
    finally:
        sys.path.remove(str(DOCS / "_gen"))
    expanded = hooks._expand([{"Results": ["results/speed.md", "bench/**/*.md"]}, "supported_ops*.md"])
    bench = sorted(p.relative_to(DOCS).as_posix() for p in (DOCS / "bench").rglob("*.md"))
    assert expanded[0] == {"Results": ["results/speed.md", *bench]}
    assert "bench/inference/bench.md" in bench
    assert expanded[1:] == sorted(p.name for p in DOCS.glob("supported_ops*.md"))


def test_readme_keeps_the_two_commands():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "bash .ci/main" in readme and "bash .ci/test" in readme
    assert (REPO / ".ci" / "run").read_text().strip().endswith("exec bash .ci/test")


# ---------------------------------------------------------------- figures and their result files

# a figure: a number with a unit of a result (targets and settings, written with ≥ < ..., are not)
FIGURE = re.compile(r"(?<![\w.,/^=≥≤<>≈~±-])(?<![≥≤<>≈~±] )(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s?(GeV|‰|%|events/s|ns|µs|ms|s|MB|kHz)(?![\w/])")
# how a stored value (a fraction, seconds, GeV ...) is scaled for each unit on a page
UNIT_SCALES = {"GeV": (1,), "‰": (1e3,), "%": (100, 1), "events/s": (1,), "ns": (1e9, 1), "µs": (1e6,), "ms": (1e3,), "s": (1,), "MB": (1, 1e-6), "kHz": (1,)}
RESULT_FILE = re.compile(r"(?<![\w/.])((?:l0emu|docs)/[\w/.-]*\w\.(?:json|csv))")
RESULT_FOLDER = re.compile(r"(?<![\w/.])(docs/[\w/.-]*\w/)")
RESULT_LINK = re.compile(r"\]\(([^)\s#]+\.(?:json|csv|md))")
# reports written by a command (l0emu grid evaluate, the KD study, l0emu bench): result files themselves
REPORT = re.compile(r"^(grid\w*|kd_study|bench)\.md$")
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?")
HISTORICAL = "historical log (no result file)"
# pages of definitions and targets, not of results
DEFINITIONS = {"docs/explanations/physics.md"}


def _numbers(value, out: list) -> list:
    if isinstance(value, bool):
        return out
    if isinstance(value, (int, float)):
        out.append(float(value))
    elif isinstance(value, dict):
        for item in value.values():
            _numbers(item, out)
    elif isinstance(value, list):
        for item in value:
            _numbers(item, out)
    return out


def _file_numbers(path: Path) -> list:
    import csv
    import json

    if path.suffix == ".json":
        return _numbers(json.loads(path.read_text(encoding="utf-8")), [])
    if path.suffix == ".csv":
        with path.open(encoding="utf-8") as f:
            cells = [cell for row in csv.reader(f) for cell in row]
    else:  # a report's text: its figures as shown, perhaps in ‰ or %
        cells = NUMBER.findall(path.read_text(encoding="utf-8"))
    found = []
    for cell in cells:
        try:
            value = float(cell.replace(",", ""))
        except ValueError:
            continue
        found += [value] if path.suffix in (".json", ".csv") else [value, value / 1e3, value / 100]
    return found


def _result_files(page: Path, text: str) -> list:
    """The result files a page's figures may come from: those it names or links, those in a
    folder it names, beside it, or in the folder named like it (results/x.md: results/x/)."""
    found = {REPO / m.group(1) for m in RESULT_FILE.finditer(text)}
    found |= {(page.parent / m.group(1)).resolve() for m in RESULT_LINK.finditer(text)}
    folders = {REPO / m.group(1) for m in RESULT_FOLDER.finditer(text)} | {page.parent, page.with_suffix("")}
    for folder in folders - {REPO}:
        if folder.is_dir():
            found |= set(folder.iterdir())
    return sorted(p for p in found if p.is_file() and (p.suffix in (".json", ".csv") or REPORT.match(p.name)))


def _table_figures(text: str, units=None):
    """(line number, figure) of every figure in a Markdown table row, outside code blocks,
    header rows and sections titled as a historical log; with ``units``, also the figures of
    those units in running text."""
    lines = text.splitlines()
    fence, historical = False, 0  # the level of the historical section we are in, 0: none
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fence = not fence
        elif line.startswith("#") and not fence:
            level = len(line) - len(line.lstrip("#"))
            if historical and level <= historical:
                historical = 0
            if not historical and HISTORICAL in line.lower():
                historical = level
        elif fence or historical or lines[min(i + 1, len(lines) - 1)].startswith("|---"):
            continue
        elif line.startswith("|"):
            yield from ((i + 1, m) for m in FIGURE.finditer(line))
        elif units:
            yield from ((i + 1, m) for m in FIGURE.finditer(line) if m.group(3) in units)


def _backed(value: float, decimals: int, unit: str, known: list) -> bool:
    import bisect

    half = 0.5 * 10**-decimals * (1 + 1e-9)
    for scale in UNIT_SCALES[unit]:
        at = bisect.bisect_left(known, (value - half) / scale)
        if any(abs(known[j] * scale - value) <= half for j in (at - 1, at, at + 1) if 0 <= j < len(known)):
            return True
    return False


FIGURE_PAGES = [p for p in PAGES if not (p.is_relative_to(DOCS) and (REPORT.match(p.name) or p.relative_to(DOCS).parts[0] == "bench"))]


@pytest.mark.parametrize("path", FIGURE_PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_table_figures_are_in_result_files(path):
    """Every figure with a unit in a page's tables, and every speed in its text, equals at the
    precision shown a value of a result file the page names, links or sits beside (generated
    tables are made from them when the site is built and are not in the page's source)."""
    if path.relative_to(REPO).as_posix() in DEFINITIONS:
        return
    text = path.read_text(encoding="utf-8")
    known = sorted({v for f in _result_files(path, text) for v in _file_numbers(f)})
    unbacked = []
    for line, match in _table_figures(text, units={"events/s"}):
        decimals = len(match.group(2)) - 1 if match.group(2) else 0
        value = float(match.group(1).replace(",", "") + (match.group(2) or ""))
        if not _backed(value, decimals, match.group(3), known):
            unbacked.append(f"{path.relative_to(REPO)}:{line}: {match.group(0)!r}")
    assert not unbacked, "figures in no result file of the page:\n" + "\n".join(unbacked)


def test_figure_check_finds_an_unbacked_figure(tmp_path):
    """The check above is not vacuous: a table figure absent from the page's files is found,
    the same figure in a result file beside the page is not."""
    page = tmp_path / "page.md"
    page.write_text("| a | b |\n|---|---|\n| x | 9.77 GeV and 0.54 ‰ |\n", encoding="utf-8")
    figures = [(m.group(1) + (m.group(2) or ""), m.group(3)) for _, m in _table_figures(page.read_text(encoding="utf-8"))]
    assert figures == [("9.77", "GeV"), ("0.54", "‰")]
    logged = "## Historical log (no result file)\n\n| x | 1.5 GeV |\n\n### More\n\n| y | 2 ns |\n\n## Results\n\n| z | 3 s |\n"
    assert [m.group(0) for _, m in _table_figures(logged)] == ["3 s"]
    prose = "It ran at 5,000 events/s for 3 s.\n"
    assert [m.group(0) for _, m in _table_figures(prose, units={"events/s"})] == ["5,000 events/s"]
    assert not _backed(9.77, 2, "GeV", [9.5, 10.0])
    (tmp_path / "rates.json").write_text('{"half": 9.768989, "fake": 0.00054009}', encoding="utf-8")
    known = sorted(v for f in _result_files(page, "") for v in _file_numbers(f))
    assert _backed(9.77, 2, "GeV", known) and _backed(0.54, 2, "‰", known)


def test_speed_page_lists_every_benchmark_result(tmp_path, monkeypatch):
    """The speed page's list (``<!-- l0emu:bench-index -->``) names every report page under
    docs/bench/ with its result files; a folder committed there later joins it by itself."""
    sys.path.insert(0, str(DOCS / "_gen"))
    try:
        import hooks
    finally:
        sys.path.remove(str(DOCS / "_gen"))
    speed = DOCS / "results" / "speed.md"
    assert "<!-- l0emu:bench-index -->" in speed.read_text(encoding="utf-8")
    listed = hooks.bench_index(speed)
    for page in (DOCS / "bench").rglob("*.md"):
        assert f"(../bench/{page.relative_to(DOCS / 'bench').as_posix()})" in listed, page
    assert "`bench.json`" in listed
    bench = tmp_path / "docs" / "bench"
    (bench / "trigger").mkdir(parents=True)
    (bench / "trigger" / "trigger.json").write_text("{}", encoding="utf-8")
    (bench / "emulator").mkdir()
    (bench / "emulator" / "report.md").write_text("# Emulator speed\n", encoding="utf-8")
    (bench / "emulator" / "emulator.csv").write_text("a\n", encoding="utf-8")
    monkeypatch.setattr(hooks, "DOCS", tmp_path / "docs")
    assert hooks.bench_index(tmp_path / "docs" / "results" / "speed.md").splitlines() == [
        "- [Emulator speed](../bench/emulator/report.md) (`bench/emulator/`): `emulator.csv`",
        "- `bench/trigger/`: `trigger.json`",
    ]
