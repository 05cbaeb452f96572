"""The documentation is true to the code: every ```python block of README.md and docs/*.md runs as
pasted (its own imports, every name defined), and nothing in the repository points a reader at files
they do not have (team notes, tracker threads).

A block that cannot run here (it needs a GPU, torchrun, or a long time) is skipped only by an explicit
marker on the line just before its fence, which renders as nothing::

    <!-- doc-test: skip (needs a CUDA GPU) -->
    ```python
    ...

Keep such markers rare: a skipped block can go stale silently.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP = re.compile(r"^<!--\s*doc-test:\s*skip\b(?P<reason>.*?)-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")


def python_blocks(path: Path) -> list[tuple[int, str, str | None]]:
    """The ```python blocks of a markdown file.

    Args:
        path: the markdown file.

    Returns:
        (line number of the opening fence, the code, the skip reason or None) per block.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None or not m["lang"]:
            i += 1
            continue
        start, indent = i, len(m["indent"])
        j = i + 1
        while j < len(lines) and not re.match(r"^\s*```\s*$", lines[j]):
            j += 1
        if m["lang"] == "python":
            marker = SKIP.match(lines[start - 1].strip()) if start > 0 else None
            reason = None if marker is None else (marker["reason"].strip(" :()-") or "marked")
            code = "\n".join(line[indent:] for line in lines[start + 1:j])
            blocks.append((start + 1, code, reason))
        i = j + 1
    return blocks


SNIPPETS = [pytest.param(path, line, code, skip, id=f"{path.relative_to(ROOT)}:{line}")
            for path in DOC_FILES for line, code, skip in python_blocks(path)]


@pytest.mark.parametrize("path,line,code,skip", SNIPPETS)
def test_doc_snippet_runs(path, line, code, skip, tmp_path, monkeypatch):
    """Each block runs alone in a fresh namespace, in an empty directory (it may write files)."""
    if skip is not None:
        pytest.skip(f"marked in the docs: {skip}")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{path.relative_to(ROOT)}:{line}", "exec"), {"__name__": "__doc_snippet__"})


def test_snippet_extraction_and_skip_marker(tmp_path):
    """The extractor finds python blocks (indented ones too), ignores other languages and honours the
    marker only on the line just before the fence."""
    md = tmp_path / "x.md"
    md.write_text("text\n```python\na = 1\n```\n```bash\nls\n```\n<!-- doc-test: skip (needs a GPU) -->\n"
                  "```python\nimport nothing_here\n```\n- item:\n  ```python\n  b = 2\n  ```\n")
    assert python_blocks(md) == [(2, "a = 1", None), (9, "import nothing_here", "needs a GPU"),
                                 (13, "b = 2", None)]


def test_docs_have_python_snippets():
    """The test above is not vacuous: README alone has several blocks."""
    assert sum(1 for p in SNIPPETS if p.id.startswith("README.md")) >= 3


# ---- no pointers to files a user does not have ---------------------------------------------------

# Built from pieces so that this file does not match itself.
_FORBIDDEN = [
    (r"\b" + "MISS" + r"ION\b", "the team's mission notes"),
    (r"\b" + "DES" + r"IGN\.md\b", "the team's design notes"),
    (r"\b" + "STY" + r"LE\.md\b", "the team's style notes"),
    (r"\.\./" + "shared\\b|/work/" + "shared\\b", "the team's shared folder"),
    (r"(?i)\b(?:the|this|an|that) " + "iss" + r"ue(?:'s)?\b", "a tracker thread"),
    (r"(?i)(?<![#/\w])" + "iss" + r"ue \d+\b", "a tracker thread by number"),
    (r"(?i)\bthe " + "no" + r"tes'|\bsource " + "no" + r"tes\b", "the team's notes"),
    (r"(?i)\b" + "hel" + r"per-\d+\b", "a team member"),
]
_TEXT_SUFFIXES = {".py", ".md", ".cpp", ".h", ".cu", ".cuh", ".toml", ".cfg", ".txt", ".sh", ".json", ".yml",
                  ".yaml", ".in", ""}
_SKIP_DIRS = {".git", "__pycache__", "build", "dist", ".venv", "venv", "runs", ".pytest_cache",
              ".hypothesis", "node_modules"}


def _repo_files() -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
        for name in filenames:
            path = Path(dirpath) / name
            if path.suffix in _TEXT_SUFFIXES and path.stat().st_size < 5_000_000:
                files.append(path)
    return files


def test_no_references_to_files_users_do_not_have():
    """Code, docs and tests say the thing itself or link to docs/ in the repository; they never cite
    team notes or tracker threads a user of the package cannot open."""
    patterns = [(re.compile(p), what) for p, what in _FORBIDDEN]
    found = []
    for path in _repo_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for pattern, what in patterns:
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()[:120]}")
    assert not found, "references to files a user does not have:\n" + "\n".join(found)


def test_reference_patterns_catch_what_they_should():
    """Each pattern matches its example and leaves ordinary prose alone (a test that cannot fail is none)."""
    hits = ["see " + "MISS" + "ION.md §4", "(" + "DES" + "IGN.md)", "STY" + "LE.md lesson 5",
            "../../" + "shared/x.md", "as the " + "iss" + "ue asks", "Targets (" + "iss" + "ue 4)",
            "the " + "no" + "tes' proposal", "hel" + "per-11"]
    misses = ["see docs/ot.md", "pytorch/pytorch#1234", "github.com/x/y/issues/12", "Design notes",
              "issues a warning", "a design choice"]
    patterns = [re.compile(p) for p, _ in _FORBIDDEN]
    for text in hits:
        assert any(p.search(text) for p in patterns), text
    for text in misses:
        assert not any(p.search(text) for p in patterns), text


# ---- the distribution name ----------------------------------------------------------------------------

def _setup_keywords() -> dict:
    """setup()'s literal keyword arguments in setup.py (name, extras_require, ...), read without running it."""
    import ast

    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    out = {}
    for kw in call.keywords:
        try:
            out[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            pass
    return out


# "pygan" on the public package index is an unrelated project: installing it (with or without
# extras) installs someone else's code. The import name stays pygan.
TAKEN_NAMES = {"pygan"}


def test_distribution_name_is_ours_and_install_lines_use_it():
    setup = _setup_keywords()
    name, extras = setup["name"], set(setup["extras_require"])
    assert re.sub(r"[-_.]+", "-", name).lower() not in TAKEN_NAMES, name
    line = re.compile(r"""pip install[^\n]*?["'`]?(pygan[\w.-]*)\[([\w,]+)\]""")
    found, wrong = 0, []
    for path in _repo_files():
        if path.suffix not in (".py", ".md", ".txt", ".sh", ""):
            continue
        for number, text in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for m in line.finditer(text):
                found += 1
                if m[1] != name or not set(m[2].split(",")) <= extras:
                    wrong.append(f"{path.relative_to(ROOT)}:{number}: {m[0]}")
    assert found, "expected install lines with extras in the docs"
    assert not wrong, f"install lines that do not name the distribution {name!r} (or an extra it has):\n" + "\n".join(wrong)


# ---- README: what a new user needs on the first run ---------------------------------------------------

def test_readme_first_run_facts():
    """The CI's test command stays verbatim; the CPU-only torch install and the torch.compile limits are
    stated (a CPU machine otherwise pulls the multi-GB CUDA build; compiling the penalty needs a flag)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8") if (ROOT / ".ci" / "run").exists() else ""
    command = re.search(r"TEST_COMMAND='([^']+)'", ci)
    if command:
        assert command[1] in text
    assert 'pip install ".[test]" && pytest -q' in text and 'pip install ".[plot,progress]"' in text
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in text
    assert "torch._dynamo.config.trace_autograd_ops = True" in text and "1.0x" in text
