"""Docstrings stay short, design notes stay in docs/, and what the README and docs name exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from services.core.config import PROJECT_ROOT

SERVICES = PROJECT_ROOT / "services"
DOCS = PROJECT_ROOT / "docs"
README = (PROJECT_ROOT / "README.md").read_text()

MAX_MODULE_DOCSTRING_LINES = 6
MAX_DOCSTRING_LINES = 12  # functions and classes; longer is a design note for docs/


def _modules() -> list[Path]:
    return sorted(p for p in SERVICES.rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(PROJECT_ROOT).as_posix()


def test_module_docstrings_are_short() -> None:
    long = {}
    for path in _modules():
        doc = ast.get_docstring(ast.parse(path.read_text()))
        if doc is not None and len(doc.splitlines()) > MAX_MODULE_DOCSTRING_LINES:
            long[_rel(path)] = len(doc.splitlines())
    assert long == {}, f"module docstrings over {MAX_MODULE_DOCSTRING_LINES} lines: move notes to docs/"


def test_function_and_class_docstrings_are_not_essays() -> None:
    long = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                doc = ast.get_docstring(node)
                if doc is not None and len(doc.splitlines()) > MAX_DOCSTRING_LINES:
                    long[f"{_rel(path)}:{node.name}"] = len(doc.splitlines())
    assert long == {}


def test_no_merge_leftovers_in_services() -> None:
    strays = [_rel(p) for p in SERVICES.rglob("*") if p.is_file() and p.suffix in {".orig", ".rej", ".bak"}]
    assert strays == []


def _markdown_files() -> list[Path]:
    return [PROJECT_ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors (lower case, punctuation dropped, spaces as dashes) and explicit ids."""
    anchors = set(re.findall(r'<a id="([^"]+)"', markdown))
    for heading in re.findall(r"^#+ (.+)$", markdown, flags=re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("page", _markdown_files(), ids=lambda p: p.name)
def test_markdown_links_resolve(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists() or (
            anchor and linked.suffix == ".md" and anchor not in _anchors(linked.read_text())
        ):
            broken.append(target)
    assert broken == []


def test_docs_paths_named_in_code_exist() -> None:
    named = {}
    for path in [*_modules(), *sorted((PROJECT_ROOT / "tests").rglob("*.py"))]:
        for ref in re.findall(r"\bdocs/[\w./-]*\w", path.read_text()):
            if not (PROJECT_ROOT / ref).exists():
                named[ref] = _rel(path)
    assert named == {}


def test_readme_links_the_design_notes() -> None:
    for page in sorted(DOCS.glob("*.md")):
        assert f"(docs/{page.name})" in README, f"README's Design notes section does not link {page.name}"


# -- the README's Layout section names what exists, and everything there is --------------------------------

# A path named in the Layout: a file (``x.py``, ``a/b.py``) or a folder (``x/``); ``<domain>`` is any folder.
_PATH = re.compile(r"(?<![\w./<>`-])((?:[\w<>-]+/)*(?:[\w<>-]+\.(?:py|json|mako)\b|[\w<>-]+/))")


def _layout_block() -> list[str]:
    section = README.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```\n")[1].splitlines()


def _layout() -> list[tuple[Path, str, Path]]:
    """Each path the Layout names: (the folder it is relative to, the name, the entry whose line it is on).

    An entry is a line's first word at the indentation of the entries of its folder (at most two more than
    the folder's); a deeper line continues the entry before it. Names in an entry's description are
    relative to the entry if it is a folder, else to the entry's folder."""
    folders: list[tuple[int, Path]] = [(-1, PROJECT_ROOT)]
    entry = PROJECT_ROOT
    names: list[tuple[Path, str, Path]] = []
    for line in _layout_block():
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        text = stripped
        if indent <= folders[-1][0] + 2:
            first, _, text = stripped.partition(" ")
            while folders[-1][0] >= indent:
                folders.pop()
            entry = folders[-1][1] / first.rstrip("/")
            names.append((folders[-1][1], first, entry))
            if first.endswith("/"):
                folders.append((indent, entry))
        context = folders[-1][1]
        names.extend((context, name, entry) for name in _PATH.findall(text))
    return names


def _exists(context: Path, name: str) -> bool:
    """``name`` exists relative to ``context`` or a folder above it, within the project."""
    for base in [context, *context.parents]:
        if base.is_relative_to(PROJECT_ROOT):
            pattern = (base / name.rstrip("/")).relative_to(PROJECT_ROOT).as_posix().replace("<domain>", "*")
            if any(PROJECT_ROOT.glob(pattern)):
                return True
    return False


def test_layout_names_only_what_exists() -> None:
    missing = [f"{_rel(context)}: {name}" for context, name, _ in _layout() if not _exists(context, name)]
    assert missing == []


def test_layout_names_every_module_and_package() -> None:
    entries = {_rel(entry) for _, _, entry in _layout()}
    words = set(re.findall(r"[\w.]+", " ".join(_layout_block())))
    unnamed = []
    for folder in (SERVICES / "core", SERVICES / "api", SERVICES / "worker"):
        for path in sorted(folder.iterdir()):
            if path.name in {"__init__.py", "__pycache__"} or not (path.suffix == ".py" or path.is_dir()):
                continue
            # modules and core's packages have an entry of their own; api's and worker's packages are named
            if path.suffix == ".py" or folder.name == "core":
                if _rel(path) not in entries:
                    unnamed.append(_rel(path))
            elif path.name not in words:
                unnamed.append(_rel(path))
    assert unnamed == []


def test_layout_names_each_entry_once() -> None:
    entries = [_rel(entry) for parent, name, entry in _layout() if entry == parent / name.rstrip("/")]
    assert sorted({e for e in entries if entries.count(e) > 1 and "<domain>" not in e}) == []
