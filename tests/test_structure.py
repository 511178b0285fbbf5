"""The package's structure, as docs/architecture.md draws it: short functions, imports that only run
down the layers, and documentation that lives in the repository."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "platform" / "mscm"
MAX_FUNCTION_LINES = 60

# What each package may import at module level (docs/architecture.md, one paragraph per package).
# Leaves (errors, paths, environ, torchfile, redact) import nothing of mscm but other leaves (errors masks
# passwords in its messages with redact).
LEAVES = {"errors", "paths", "environ", "torchfile", "redact", "configs"}  # configs: the recipe YAML files
ALLOWED = {
    "datasets": set(),
    "config": {"datasets"},
    "data": {"config", "datasets"},
    "model": {"config", "data", "datasets"},
    "losses": {"config", "model"},
    "checkpoint": {"config"},
    "eval": {"config", "data", "datasets"},
    "tracking": {"checkpoint", "config", "data", "datasets"},
    "preflight": {"datasets", "tracking"},
    "train": {"checkpoint", "config", "data", "datasets", "eval", "losses", "model"},
    "registry": {"checkpoint", "config", "data", "datasets", "eval", "tracking"},
    "tune": {"config", "raycluster", "tracking", "train"},
    "raycluster": set(),
    "cli": set(),  # everything lazily, so `mscm --help` starts fast
    "__main__": {"cli"},
}
# Function-level imports that reach up a layer on purpose, each for one reason.
LAZY_UPWARD = {
    ("checkpoint", "model"),  # load_model builds the network the checkpoint describes
    ("data", "paths"),
    ("eval", "checkpoint"),  # mscm evaluate loads a checkpoint ...
    ("eval", "preflight"),  # ... and checks its dataset before any image is decoded
    ("tracking", "model"),  # logging the inference model and rebuilding a checkpoint from it
    ("tracking", "train"),  # the names of the evaluation files a trial writes (train.report_keys)
    ("preflight", "checkpoint"),
    ("preflight", "data"),
    ("preflight", "model"),
    ("train", "preflight"),
    ("train", "raycluster"),
    ("train", "tracking"),
    ("registry", "preflight"),
    ("registry", "model"),  # mscm import-authors: the authors' key names, and the network that takes them
    ("tune", "preflight"),
}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def _imports(path: Path, tree: ast.Module):
    """(target top-level package, at module level?) for every relative import outside TYPE_CHECKING."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = parts[:-1]
    typing_only = {
        id(n)
        for node in tree.body
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0 and id(node) not in typing_only:
            target = package[: len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
            if len(target) >= 2:
                yield target[1].removesuffix(".py"), id(node) in top


def test_no_function_is_longer_than_60_lines():
    long = [
        f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, "\n".join(long)


def test_imports_run_down_the_layers():
    wrong = []
    for path, tree in _modules():
        me = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for target, at_top in _imports(path, tree):
            if target == me or target in LEAVES:
                continue
            if me in LEAVES:
                wrong.append(f"{path.relative_to(REPO)}: the leaf {me} imports {target}")
            elif at_top and target not in ALLOWED[me]:
                wrong.append(f"{path.relative_to(REPO)}: {me} imports {target} at module level")
            elif not at_top and target not in ALLOWED[me] and (me, target) not in LAZY_UPWARD and me != "cli":
                wrong.append(f"{path.relative_to(REPO)}: {me} imports {target} (not a declared lazy import)")
    assert not wrong, "\n".join(wrong)


def test_every_package_is_declared():
    found = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p, _ in _modules()} - {"__init__"}
    assert found == set(ALLOWED) | LEAVES


def _tracked_text_files():
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return [
        REPO / f for f in out if Path(f).suffix in {".py", ".md", ".yaml", ".yml", ".toml", ""} and (REPO / f).is_file()
    ]


OUTSIDE = ("shared" + "/design", "../" + "shared")  # spelled in two parts so this file does not match itself


def test_no_document_outside_the_repository_is_referenced():
    """A clone holds no folder beside it: every document reference must point inside the repository."""
    outside = [
        f"{p.relative_to(REPO)}:{i}"
        for p in _tracked_text_files()
        for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if any(needle in line for needle in OUTSIDE)
    ]
    assert not outside, "\n".join(outside)


def test_every_referenced_doc_exists():
    named = {
        m
        for p in _tracked_text_files()
        for m in re.findall(r"\bdocs/[\w.-]+\.md\b", p.read_text(encoding="utf-8", errors="replace"))
    }
    assert named, "no docs/ reference found at all"
    missing = sorted(n for n in named if not (REPO / n).is_file())
    assert not missing, missing
