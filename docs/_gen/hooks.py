"""MkDocs hooks of the documentation site (mkdocs.yml `hooks:`); not part of the package.

- nav entries with a ``*`` are file patterns under docs/, expanded sorted, so that pages
  others add (``supported_ops*.md``, ``bench/**/*.md``) join the navigation by their name;
- ``<!-- l0emu:include PATH -->`` puts a repository file (a shipped network's PROVENANCE.md)
  into a page (without its title), its relative links rewritten for the page's place, its
  headings one level down; ``<!-- l0emu:include PATH ## Heading -->`` only that section of it;
- ``<!-- l0emu:api -->`` becomes one mkdocstrings entry per public name of ``l0emu``;
- ``<!-- l0emu:bench-index -->`` becomes a list of the benchmark results committed under
  docs/bench/ (one entry per report page, with the result files beside it), so that the
  speed page names every measurement there, new ones included, and no other;
- the Sphinx roles of docstrings (``:func:``) are dropped from the rendered API page;
- docs/_gen is put on ``sys.path`` so that executed code blocks can ``import docgen``.
"""

from __future__ import annotations

import posixpath
import re
import sys
from pathlib import Path

GEN = Path(__file__).resolve().parent
DOCS = GEN.parent
REPO = DOCS.parent
INCLUDE = re.compile(r"^<!-- l0emu:include (\S+)(?: (#+ .+?))? -->$", re.MULTILINE)
API = re.compile(r"^<!-- l0emu:api -->$", re.MULTILINE)
BENCH_INDEX = re.compile(r"^<!-- l0emu:bench-index -->$", re.MULTILINE)
RESULT_SUFFIXES = (".json", ".csv", ".png", ".txt", ".log")
LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?\)")
# Sphinx roles in docstrings (``:func:`name```), which mkdocstrings shows as text before the code
ROLE = re.compile(r":(?:func|class|data|mod|meth|attr|exc):(?=<code>)")


def _expand(entries: list) -> list:
    out = []
    for entry in entries:
        if isinstance(entry, str) and "*" in entry:
            out.extend(sorted(p.relative_to(DOCS).as_posix() for p in DOCS.glob(entry) if "_gen" not in p.parts))
        elif isinstance(entry, dict):
            out.append({title: _expand(value) if isinstance(value, list) else value for title, value in entry.items()})
        else:
            out.append(entry)
    return out


def on_config(config):
    if str(GEN) not in sys.path:
        sys.path.insert(0, str(GEN))
    # a pattern must not repeat a page listed by name before it
    seen: set = set()

    def dedupe(entries):
        kept = []
        for entry in entries:
            if isinstance(entry, str):
                if entry in seen:
                    continue
                seen.add(entry)
                kept.append(entry)
            else:
                for value in entry.values():
                    if isinstance(value, str):
                        seen.add(value)
                kept.append({t: dedupe(v) if isinstance(v, list) else v for t, v in entry.items()})
        return kept

    config["nav"] = dedupe(_expand(config["nav"]))
    return config


def _rewrite_links(text: str, source: Path, page: Path) -> str:
    """Relative links of ``source`` (a repository file) made relative to the page ``page``."""

    def fix(match):
        target = match.group(2)
        if "://" in target or target.startswith("/"):
            return match.group(0)
        resolved = (source.parent / target).resolve()
        new = posixpath.relpath(resolved.as_posix(), page.parent.resolve().as_posix())
        return f"{match.group(1)}{new}{match.group(3) or ''})"

    return LINK.sub(fix, text)


def _section(text: str, heading: str, source: Path) -> str:
    """The part of ``text`` under the line ``heading``, up to the next heading of its level or above."""
    lines = text.splitlines()
    if heading not in lines:
        msg = f"{source}: no heading {heading!r} to include"
        raise ValueError(msg)
    start = lines.index(heading)
    level = len(heading.split(" ", 1)[0])
    end = next((i for i in range(start + 1, len(lines)) if re.match(rf"^#{{1,{level}}} ", lines[i])), len(lines))
    return "\n".join(lines[start + 1 : end]) + "\n"


def _include(match, page_path: Path) -> str:
    source = REPO / match.group(1)
    if not source.is_file():
        msg = f"{page_path}: l0emu:include names {match.group(1)}, which is not a file of the repository"
        raise FileNotFoundError(msg)
    text = source.read_text(encoding="utf-8")
    if match.group(2):
        text = _section(text, match.group(2), source)
    elif text.startswith("# "):
        text = text.split("\n", 1)[1]  # the file's title: the page has its own
    text = re.sub(r"^(#+) ", r"#\1 ", text, flags=re.MULTILINE)  # one level below the page's title
    return _rewrite_links(text, source, page_path)


def _api_entries() -> str:
    import l0emu

    lines = []
    for name in l0emu.__all__:
        if name == "__version__":
            continue
        module = l0emu._LAZY[name]
        # griffe reads sources from the checkout, where l0emu.simulation is the folder simulation/
        module = module.replace("l0emu.simulation", "simulation", 1)
        lines.append(f"::: {module}.{name}\n")
    return "\n".join(lines)


def bench_index(page_path: Path) -> str:
    """Markdown: one item per report page under docs/bench/ (its title, linked), with the
    result files of its folder; a folder without a page is listed by its files."""
    bench = DOCS / "bench"
    items = []
    for folder in sorted({p.parent for p in bench.rglob("*") if p.is_file()}):
        pages = sorted(folder.glob("*.md"))
        results = sorted(p.name for p in folder.iterdir() if p.suffix in RESULT_SUFFIXES)
        files = ", ".join(f"`{name}`" for name in results) or "no result file"
        where = folder.relative_to(DOCS).as_posix()
        for md in pages or [None]:
            if md is None:
                items.append(f"- `{where}/`: {files}")
                continue
            first = md.read_text(encoding="utf-8").splitlines()[0]
            title = first[2:].strip() if first.startswith("# ") else md.stem
            link = posixpath.relpath(md.as_posix(), page_path.parent.as_posix())
            items.append(f"- [{title}]({link}) (`{where}/`): {files}")
    if not items:
        return "No benchmark result is committed under `docs/bench/` yet."
    return "\n".join(items)


def on_page_markdown(markdown, page, config, files):
    page_path = DOCS / page.file.src_uri
    markdown = INCLUDE.sub(lambda m: _include(m, page_path), markdown)
    markdown = BENCH_INDEX.sub(lambda _: bench_index(page_path), markdown)
    if API.search(markdown):
        markdown = API.sub(lambda _: _api_entries(), markdown)
    return markdown


def on_page_content(html, page, config, files):
    return ROLE.sub("", html)
