"""Model libraries imported from their installed distribution only, never from the working folder.

``python -m nc_audit`` puts the working folder first on ``sys.path``, and in CI that folder is a pull
request's checkout: a ``./timm.py``, ``./transformers.py`` or ``./torchvision/__init__.py`` there would
run instead of the library (also when the library is not installed at all). :func:`import_installed`
imports a library with ``sys.path`` reduced to the interpreter's own folders (the standard library and
the site-packages folders of :func:`installed_dirs`), so neither the library nor anything it imports on
the way is looked up in the working folder or an input's folder, and then checks that the module's file
is one of the files its distribution installed (the distribution's ``RECORD``, also looked up in the
site-packages folders only). A module already imported from anywhere else is refused the same way.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import site
import sys
import sysconfig
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from nc_audit.core.errors import InputError

#: Distribution that installs each model library nc-audit may import on a file's word.
DISTRIBUTIONS = {
    "torch": "torch",
    "torchvision": "torchvision",
    "timm": "timm",
    "transformers": "transformers",
}


def _resolved(entry: str) -> Path | None:
    try:
        return Path(entry).resolve()
    except (OSError, RuntimeError, ValueError):
        return None


@lru_cache(maxsize=1)
def installed_dirs() -> tuple[Path, ...]:
    """The site-packages folders of this interpreter (where installed distributions live)."""
    paths = sysconfig.get_paths()
    found = [paths.get("purelib"), paths.get("platlib"), *site.getsitepackages()]
    with contextlib.suppress(AttributeError):  # a virtualenv's site module may lack it
        found.append(site.getusersitepackages())
    dirs = {_resolved(entry) for entry in found if entry}
    return tuple(sorted(d for d in dirs if d is not None and d.is_dir()))


@lru_cache(maxsize=1)
def _stdlib_dirs() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    dirs = {_resolved(paths[key]) for key in ("stdlib", "platstdlib") if paths.get(key)}
    dirs |= {_resolved(str(Path(paths["stdlib"]) / "lib-dynload"))} if paths.get("stdlib") else set()
    return tuple(d for d in dirs if d is not None)


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def safe_path() -> list[str]:
    """``sys.path`` without the working folder, relative entries and anything outside the interpreter's
    standard library and site-packages folders (zip entries of the standard library kept)."""
    roots = (*installed_dirs(), *_stdlib_dirs())
    kept = []
    for entry in sys.path:
        if not entry or not os.path.isabs(entry):
            continue
        resolved = _resolved(entry)
        if resolved is not None and (_inside(resolved, roots) or entry.endswith(".zip")):
            kept.append(entry)
    return kept


@contextlib.contextmanager
def only_installed_path() -> Iterator[None]:
    """``sys.path`` reduced to :func:`safe_path` while a library imports or builds (lazy imports included)."""
    saved = list(sys.path)
    sys.path[:] = safe_path()
    try:
        yield
    finally:
        sys.path[:] = saved


@lru_cache(maxsize=8)
def _distribution_files(distribution: str) -> tuple[Path, frozenset[str]] | None:
    """(the folder ``distribution`` was installed into, the files it installed relative to it), the
    distribution looked up in site-packages only."""
    dirs = [str(d) for d in installed_dirs()]
    found = next(iter(importlib.metadata.distributions(name=distribution, path=dirs)), None)
    base = _resolved(str(found.locate_file(""))) if found is not None else None
    if found is None or base is None:
        return None
    return base, frozenset(str(f) for f in found.files or ())


def _installed_file(module: ModuleType) -> bool:
    """Whether ``module``'s file is one its library's distribution installed into site-packages."""
    distribution = DISTRIBUTIONS.get(module.__name__.partition(".")[0])
    origin = getattr(module, "__file__", None)
    installed = _distribution_files(distribution) if distribution is not None else None
    path = _resolved(origin) if isinstance(origin, str) else None
    if installed is None or path is None or not _inside(path, installed_dirs()):
        return False
    base, files = installed
    try:
        return path.relative_to(base).as_posix() in files
    except ValueError:
        return False


def import_installed(name: str) -> ModuleType:
    """The module ``name`` of a model library (:data:`DISTRIBUTIONS`) from its installed distribution's
    own files; ImportError when the library is not installed, InputError when what would be imported is
    not the distribution's file (a shadowing copy in the working folder, say)."""
    top = name.partition(".")[0]
    if top not in DISTRIBUTIONS:
        raise InputError(f"{name} is not one of the model libraries {', '.join(DISTRIBUTIONS)}")
    for prefix in (top, name):  # the package first: its file decides where the rest comes from
        loaded = sys.modules.get(prefix)
        if loaded is None:
            with only_installed_path():
                loaded = importlib.import_module(prefix)
        module = loaded
        if not _installed_file(module):
            where = getattr(module, "__file__", None)
            raise InputError(
                f"{prefix} would be imported from {where}, not from the installed {DISTRIBUTIONS[top]} "
                "distribution's files in site-packages; nc-audit does not import it"
            )
    return module
