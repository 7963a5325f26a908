"""Help and shell completion as a user meets them: `--help` fits 80 columns with real metavars and every
default shown; Typer's completion (bash, zsh, fish) completes metric names in --fail-on and dataset
names in --data, driven the way a shell drives it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NC_AUDIT = str(Path(sys.executable).parent / "nc-audit")
COMMANDS = [[], ["measure"], ["extract"], ["track"], ["finetune"], ["interpolate"], ["demo", "grokking"],
            ["cache"], ["cache", "list"], ["cache", "clear"], ["prune"], ["study"], ["study", "label-smoothing"],
            ["study", "semi-supervised"]]  # fmt: skip


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("_NC_AUDIT", "_TYPER", "COMP_"))}
    return subprocess.run(
        [NC_AUDIT, *args], capture_output=True, text=True, env={**base, **(env or {})}, cwd=cwd, timeout=120
    )


@pytest.fixture(scope="module")
def help_pages() -> dict[str, str]:
    pages = {}
    for command in COMMANDS:
        result = run(*command, "--help", env={"COLUMNS": "80"})
        assert result.returncode == 0, result.stderr
        pages[" ".join(command)] = result.stdout
    return pages


def test_help_fits_80_columns_and_cuts_nothing(help_pages: dict[str, str]) -> None:
    for command, page in help_pages.items():
        for line in page.splitlines():
            assert len(line) <= 80, f"{command}: {line!r}"
        assert "…" not in page, command


def test_help_names_values_with_metavars_not_python_types(help_pages: dict[str, str]) -> None:
    for command, page in help_pages.items():
        assert not re.search(r"<(bool|str|int|float|path|list\[[^]]*\])>", page), command
    measure = help_pages["measure"]
    for option, metavar in (("--fail-on", "RULE"), ("--json", "PATH"), ("--tolerance", "FLOAT"),
                            ("--data", "NAME|PATH"), ("--device", "[auto|cpu|cuda]"), ("--format", "[table|json|markdown]"),
                            ("--baseline", "REPORT"), ("--model", "FACTORY"), ("--html", "PATH")):  # fmt: skip
        assert re.search(rf"{re.escape(option)} {re.escape(metavar)}\s", measure), option
    assert "--train-samples-per-class K" in help_pages["finetune"]
    assert "--gate [last|best|all]" in help_pages["track"]


@pytest.mark.parametrize(
    ("command", "option", "default"),
    [
        ("measure", "--device", "auto"),
        ("measure", "--format", "table"),
        ("measure", "--tolerance", "0"),
        ("measure", "--split", "train"),
        ("measure", "--estimator", "auto"),
        ("track", "--device", "auto"),
        ("track", "--format", "table"),
        ("track", "--tolerance", "0"),
        ("track", "--gate", "last"),
        ("extract", "--batch-size", "512"),
        ("finetune", "--epochs", "10"),
        ("finetune", "--lr", "0.001"),
        ("interpolate", "--steps", "11"),
        ("demo grokking", "--steps", "6000"),
        ("demo grokking", "--model", "modmlp"),
        ("prune", "--sparsities", "0,0.3,0.5,0.7,0.8,0.9,0.95"),
        ("prune", "--scope", "global"),
        ("study label-smoothing", "--epsilons", "0,0.05,0.1,0.2"),
        ("study label-smoothing", "--threads", "1"),
        ("study semi-supervised", "--weights", "0,0.1,1"),
    ],
)
def test_every_default_is_shown(help_pages: dict[str, str], command: str, option: str, default: str) -> None:
    page = help_pages[command]
    start = page.index(f"  {option} ")
    following = re.search(r"\n  (-\w, )?--", page[start + 3 :])
    entry = " ".join(page[start : start + 3 + (following.start() if following else len(page))].split())
    assert f"[default: {default}" in entry, entry


def test_quiet_and_its_old_name_are_one_option(help_pages: dict[str, str]) -> None:
    for command in ("measure", "track", "extract", "finetune", "interpolate", "demo grokking", "prune",
                    "study label-smoothing", "study semi-supervised"):  # fmt: skip
        assert "-q, --quiet, --no-progress" in help_pages[command], command


# --- completion ----------------------------------------------------------------------------------------
def completions(shell: str, words: str) -> list[str]:
    """What nc-audit offers for the last word of ``words``, asked the way the shell's script asks."""
    parts = words.split(" ")
    if shell == "bash":
        env = {"_NC_AUDIT_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(parts) - 1)}
    else:
        env = {"_NC_AUDIT_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": words}
        if shell == "fish":
            env["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
    result = run(env=env)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_fail_on_completes_metric_names(shell: str) -> None:
    found = "\n".join(completions(shell, "nc-audit measure x.pt --fail-on mi"))
    for name in ("mi", "mir", "mi_samples"):
        assert re.search(rf"(^|\W){name}(\W|$)", found), (shell, found)
    assert "nc1" not in found and "hdr" not in found


def test_fail_on_offers_nothing_once_the_operator_is_typed() -> None:
    assert completions("bash", "nc-audit track run --fail-on nc1<=") == []


@pytest.mark.parametrize(
    "shell",
    [
        pytest.param(shell, marks=pytest.mark.slow) for shell in ("bash", "zsh", "fish")
    ],  # completion subprocesses,
)
def test_data_completes_dataset_names(shell: str) -> None:
    found = "\n".join(completions(shell, "nc-audit measure x.pt --data g"))
    assert "gaussian" in found and "digits" not in found


@pytest.mark.slow  # a completion subprocess
def test_data_completes_data_files_too(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "val.npz").write_bytes(b"")
    (tmp_path / "data" / "notes.txt").write_bytes(b"")
    result = run(
        env={
            "_NC_AUDIT_COMPLETE": "complete_bash",
            "COMP_WORDS": "nc-audit extract x.pt --data data/",
            "COMP_CWORD": "4",
        },
        cwd=tmp_path,
    )
    assert result.stdout.splitlines() == ["data/val.npz"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_installed_bash_script_completes_through_bash_itself(tmp_path: Path) -> None:
    """--install-completion writes the script Typer generates; bash sourcing it completes --fail-on."""
    home = tmp_path / "home"
    home.mkdir()
    installed = run("--install-completion", "bash", env={"HOME": str(home), "SHELL": "/bin/bash",
                                                        "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    script = home / ".bash_completions" / "nc-audit.sh"
    assert script.is_file() and str(script) in (home / ".bashrc").read_text()
    shown = run("--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert shown.stdout.strip() == script.read_text().strip()
    program = (
        f"source {script}; COMP_WORDS=(nc-audit track run --fail-on hd); COMP_CWORD=4; "
        '_nc_audit_completion nc-audit; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env = {**os.environ, "PATH": f"{Path(NC_AUDIT).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, env=env, timeout=120)
    assert result.stdout.split() == ["hdr", "hdr_samples"], result.stderr
