"""The type checker of `make lint`: mypy passes on the package, in the mode pyproject.toml sets, and every
``# type: ignore`` in nc_audit/ names its error code and says why in place."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nc_audit"

#: The settings that make annotations and frozen dataclasses checked rather than decorative.
STRICT = (
    "disallow_untyped_defs",
    "disallow_incomplete_defs",
    "check_untyped_defs",
    "no_implicit_optional",
    "warn_unused_ignores",
    "warn_redundant_casts",
    "warn_return_any",
    "strict_equality",
)

#: ``# type: ignore[code, ...]  # reason``: the codes silenced and, on the same line, why.
JUSTIFIED = re.compile(r"type:\s*ignore\[[a-z][a-z-]*(,\s*[a-z][a-z-]*)*\]\s+#\s*\S")
SILENCING = re.compile(r"type:\s*ignore|mypy:\s*ignore-errors|mypy:\s*disable-error-code", re.IGNORECASE)


def unjustified_ignores(source: str) -> list[tuple[int, str]]:
    """(line, comment) of every comment that silences mypy without an error code and a reason."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and SILENCING.search(token.string):
            if not JUSTIFIED.search(token.string):
                found.append((token.start[0], token.string))
    return found


def mypy_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]


def test_the_checker_finds_each_kind_of_unjustified_ignore() -> None:
    bad = [
        "x = f()  # type: ignore\n",
        "x = f()  # type: ignore[arg-type]\n",
        "x = f()  # type: ignore[arg-type]  #\n",
        "x = f()  # type:ignore  # no code\n",
        "# mypy: ignore-errors\n",
        "# mypy: disable-error-code=arg-type\n",
    ]
    for line in bad:
        assert len(unjustified_ignores(line)) == 1, line
    good = "x = f()  # type: ignore[arg-type, index]  # the record was checked above\ns = '# type: ignore'\n"
    assert unjustified_ignores(good) == []


def test_every_type_ignore_in_the_package_names_its_code_and_reason() -> None:
    problems = [
        f"{path.relative_to(ROOT)}:{line}: {comment}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, comment in unjustified_ignores(path.read_text(encoding="utf-8"))
    ]
    assert problems == [], "write `# type: ignore[code]  # reason` (or fix the type):\n" + "\n".join(problems)


def test_mypy_runs_in_a_strict_enough_mode_from_make_lint() -> None:
    config = mypy_config()
    assert config["files"] == ["nc_audit"]
    assert [flag for flag in STRICT if config.get(flag) is not True] == []
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    lint = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)  # the rule and its recipe
    assert lint is not None and re.search(r"\$\(MAKE\).* typecheck$", lint.group(1), re.MULTILINE)
    assert re.search(r"^typecheck:.*\n\t\$\(PY\) -m mypy\s*$", makefile, re.MULTILINE)


@pytest.mark.slow
def test_mypy_passes_on_the_package() -> None:
    """The whole package, as `make typecheck` runs it (about 35 s cold on 2 cores, 1 s warm)."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Success: no issues found" in result.stdout


def test_no_module_of_the_package_is_exempt_from_the_checker() -> None:
    """An override may only say where a third-party package has no stubs, never silence nc-audit's code."""
    overrides = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"].get(
        "overrides", []
    )
    exempt = [
        override["module"]
        for override in overrides
        if any(key != "module" and key != "ignore_missing_imports" for key in override)
        or any(str(name).startswith("nc_audit") for name in override["module"])
    ]
    assert exempt == []
