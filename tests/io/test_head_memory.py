"""The head is the one array read whole: its float64 copy is bounded before it is read or converted
(nc_audit/core/limits.py), from a dump and from a checkpoint alike, and ``--max-head-memory`` raises it."""

from __future__ import annotations

from pathlib import Path

import pytest
import runs
from typer.testing import CliRunner, Result

from nc_audit.cli import app
from nc_audit.core.errors import InputError
from nc_audit.core.limits import DEFAULT_HEAD_MEMORY, HEAD_MEMORY_VARIABLE, head_memory, parse_size

#: The random problem's head is 7 × 12: 672 bytes as float64.
HEAD_BYTES = 7 * 12 * 8


@pytest.mark.parametrize(
    ("text", "size"),
    [("672", 672), ("1KiB", 1024), ("1.5GiB", 3 * 2**29), ("2 GB", 2 * 10**9), ("512mib", 2**29)],
)
def test_sizes_are_read_with_binary_and_decimal_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GiB", "-1GiB", "0", "1 parsec", "1e9", "nan"])
def test_a_size_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(InputError, match=r"a size such as|must be positive"):
        parse_size(text, "--max-head-memory")


def test_the_default_is_one_gibibyte_and_the_variable_overrides_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HEAD_MEMORY_VARIABLE, raising=False)
    assert head_memory() == DEFAULT_HEAD_MEMORY == 2**30
    monkeypatch.setenv(HEAD_MEMORY_VARIABLE, "8GiB")
    assert head_memory() == 8 * 2**30


def measure(*args: str | Path, limit: str | None = None) -> Result:
    """``nc-audit [--max-head-memory LIMIT] measure ARGS`` with the variable unset (and restored after)."""
    root = ["--max-head-memory", limit] if limit is not None else []
    return CliRunner().invoke(app, [*root, "measure", *map(str, args)], env={HEAD_MEMORY_VARIABLE: None})


@pytest.mark.parametrize("source", ["dump", "checkpoint"])
def test_a_head_above_the_limit_is_refused_before_reading_and_the_option_lets_it_in(
    source: str, random_dump: Path, random_checkpoint: Path
) -> None:
    args: list[str | Path] = (
        [random_dump] if source == "dump" else [random_checkpoint, "--features", random_dump]
    )
    refused = measure(*args, limit=str(HEAD_BYTES - 1))
    runs.assert_bad_input(refused, "takes 672 B as float64", "--max-head-memory")
    assert measure(*args, limit=str(HEAD_BYTES)).exit_code == 0
    assert measure(*args).exit_code == 0  # the default


def test_the_environment_variable_is_the_same_limit(random_dump: Path) -> None:
    result = CliRunner().invoke(app, ["measure", str(random_dump)], env={HEAD_MEMORY_VARIABLE: "100"})
    runs.assert_bad_input(result, "/head/weight", "--max-head-memory")


def test_a_bad_limit_is_one_line_and_exit_2(random_dump: Path) -> None:
    runs.assert_bad_input(measure(random_dump, limit="lots"), "--max-head-memory must be a size")
