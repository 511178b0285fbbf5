"""Find a search-space file by path or by name.

A name (``mimb``, ``smoke``) resolves to ``<project>/search_spaces/<name>.yaml`` (the checkout, or
``$MSCM_HOME``, see :func:`mscm.paths.project_dir`), else to the copy shipped inside the package.
The package copy is ``platform/mscm/search_spaces``, a symlink to the top-level ``search_spaces/``
that setuptools follows when it builds a wheel, so ``ray submit`` jobs (only the script is copied
to the head node) still find the spaces through the installed package.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..config import ConfigError
from ..paths import project_dir

SPACES_FOLDER = "search_spaces"


def space_dirs() -> list[Path]:
    """Folders searched for named spaces, first match wins (duplicates removed)."""
    candidates = [project_dir() / SPACES_FOLDER, Path(str(resources.files("mscm") / SPACES_FOLDER))]
    out: list[Path] = []
    for d in candidates:
        if d.is_dir() and all(d.resolve() != o.resolve() for o in out):
            out.append(d)
    return out


def shipped_spaces() -> list[str]:
    """Names that :func:`find_space` resolves without a path."""
    return sorted({p.stem for d in space_dirs() for p in d.glob("*.yaml")})


def find_space(name_or_path: str | Path) -> Path:
    """The file of a search space given as a path (``*.yaml`` or containing ``/``) or a name."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix in (".yaml", ".yml") or "/" in text or path.is_file():
        if not path.is_file():
            raise ConfigError(str(path), "", "search-space file not found")
        return path
    for d in space_dirs():
        candidate = d / f"{text}.yaml"
        if candidate.is_file():
            return candidate
    raise ConfigError(text, "", f"no such search-space file or shipped space (shipped: {shipped_spaces()})")
