"""Project defaults from ``[tool.nc-audit]`` in the nearest ``pyproject.toml``.

Example::

    [tool.nc-audit]
    fail-on = ["nc1<=0.5", "mir>=0.9"]
    baseline = "reports/baseline.json"     # relative to the pyproject.toml's folder
    tolerance = 0.01                       # or a table: { mir = 0.01, "*" = 0.05 }
    format = "table"                       # table | json | markdown
    device = "auto"                        # auto | cpu | cuda | cuda:N
    cache-dir = ".nc-audit-cache"          # relative to the pyproject.toml's folder

Keys may be written with dashes or underscores. Command-line flags override every value here; the
CLI does that merging.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.io.guards.files import read_capped
from nc_audit.report.formats.registry import STDOUT_FORMATS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

#: Largest pyproject.toml read for [tool.nc-audit].
MAX_CONFIG_BYTES = 4 * 2**20
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")

#: Built-in defaults; ``load_defaults`` returns this dict updated with the project's values.
BUILTIN_DEFAULTS: dict[str, Any] = {
    "fail_on": [],  # list[str]: rules as typed; parsed by nc_audit.gating.rules.parse_rule
    "baseline": None,  # Path | None: a report or trajectory JSON to compare against
    "tolerance": 0.0,  # float | dict[str, float]: allowed move away from the NC target (gate)
    "format": "table",  # str: what stdout shows, one of the registry's STDOUT_FORMATS
    "device": "auto",  # str: auto | cpu | cuda | cuda:N
    "cache_dir": None,  # Path | None: where extracted feature dumps are kept
    "config_path": None,  # Path | None: the pyproject.toml the values came from
}
_KEYS = ("fail_on", "baseline", "tolerance", "format", "device", "cache_dir")


def find_pyproject(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` in ``start`` or one of its parent folders, or None."""
    folder = start.resolve()
    if folder.is_file():
        folder = folder.parent
    for candidate in (folder, *folder.parents):
        path = candidate / "pyproject.toml"
        if path.is_file():
            return path
    return None


def _read_section(path: Path) -> Mapping[str, Any]:
    """The ``[tool.nc-audit]`` table of one pyproject.toml ({} when absent)."""
    if tomllib is None:  # pragma: no cover - only on Python 3.10 without tomli
        raise InputError(f"{path}: reading [tool.nc-audit] on Python 3.10 needs tomli: pip install tomli")
    data = read_capped(path, MAX_CONFIG_BYTES, "pyproject.toml")  # a regular file of bounded size
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from exc
    except RecursionError:
        raise InputError(f"{path}: not valid TOML (arrays or tables nested too deeply)") from None
    tool = document.get("tool", {})
    section = tool.get("nc-audit", {}) if isinstance(tool, dict) else {}
    if not isinstance(section, dict):
        raise InputError(f"{path}: [tool.nc-audit] must be a table of settings")
    return section


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_tolerance(value: Any, where: str) -> float | dict[str, float]:
    """A tolerance >= 0, or a table of them per metric ('*' for the default)."""
    if _is_number(value) and value >= 0:
        return float(value)
    if isinstance(value, dict) and all(_is_number(v) and v >= 0 for v in value.values()):
        return {str(k): float(v) for k, v in value.items()}
    raise InputError(f'{where}: tolerance must be a number >= 0 or a table like {{ mir = 0.01, "*" = 0.05 }}')


def _normalise(section: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """Check each key and type of the section; relative paths are taken from the pyproject's folder."""
    values: dict[str, Any] = {}
    for raw_key, value in section.items():
        key = raw_key.replace("-", "_")
        where = f"{path}: [tool.nc-audit] {raw_key}"
        if key not in _KEYS:
            known = ", ".join(k.replace("_", "-") for k in _KEYS)
            raise InputError(f"{path}: unknown key {raw_key!r} in [tool.nc-audit]; known keys: {known}")
        if key in values:
            raise InputError(f"{where}: set twice (with a dash and with an underscore); keep one")
        if key == "fail_on":
            rules = [value] if isinstance(value, str) else value
            if not isinstance(rules, list) or not all(isinstance(rule, str) for rule in rules):
                raise InputError(f'{where}: expected a list of rules like ["nc1<=0.5", "mir>=0.9"]')
            values[key] = list(rules)
        elif key in ("baseline", "cache_dir"):
            if not isinstance(value, str) or not value:
                raise InputError(f"{where}: expected a path as a string")
            values[key] = path.parent / Path(value).expanduser()
        elif key == "tolerance":
            values[key] = _check_tolerance(value, where)
        elif key == "format":
            if value not in STDOUT_FORMATS:  # the formats --format prints (report/formats/registry.py)
                raise InputError(f"{where}: expected one of {', '.join(STDOUT_FORMATS)}, got {value!r}")
            values[key] = value
        elif key == "device":
            if not isinstance(value, str) or not _DEVICE_RE.match(value):
                raise InputError(f"{where}: expected auto, cpu, cuda or cuda:N, got {value!r}")
            values[key] = value
    return values


def load_defaults(start: Path | None = None) -> dict[str, Any]:
    """Defaults for the CLI from ``[tool.nc-audit]`` of the nearest pyproject.toml above ``start`` (cwd).

    Returns every key of ``BUILTIN_DEFAULTS`` (normalised, underscore names): fail_on (list[str]),
    baseline (Path | None), tolerance (float | dict[str, float]), format (str), device (str),
    cache_dir (Path | None), and config_path (the file read, or None). Only the nearest pyproject.toml
    is read, even when it has no [tool.nc-audit] section. Raises InputError naming the file and key for
    an unknown key, a value of the wrong type, or invalid TOML.
    """
    defaults = {
        key: (list(value) if isinstance(value, list) else value) for key, value in BUILTIN_DEFAULTS.items()
    }
    path = find_pyproject(Path.cwd() if start is None else Path(start))
    if path is None:
        return defaults
    defaults.update(_normalise(_read_section(path), path))
    defaults["config_path"] = path
    return defaults
