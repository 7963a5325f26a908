"""`make readme`: regenerate every output block of README.md from the real commands and result files.

A generated block sits between two HTML comments; everything between them is rewritten::

    <!-- readme:run nc-audit measure {last} --features {last_h5} -->
    ```text
    $ nc-audit measure sample_checkpoints/digits-mlp/epoch_0750.pt --features ...
    ...its real output...
    ```
    <!-- /readme -->

Kinds of block:

- ``readme:run [KEY=VALUE ...] COMMAND``: the command line (shell quoting), then its output, stdout and
  stderr as a terminal shows them. Options before the command: ``exit=N`` (the exit code it must have,
  default 0), ``tail=N`` (keep the last N lines), ``head=N`` (keep the first N lines), ``show=PATH`` (show that file, written by the command,
  instead of its output), ``raw=1`` (insert stdout as Markdown, e.g. ``--format markdown``),
  ``setup='python scripts/NAME.py ARGS'`` (run one of the repository's scripts in the scratch folder
  first, once per run of this script, and show it with its output: how the README's tiny language model
  is built); UPPERCASE keys are environment variables (``COLUMNS=80``; the default is 120).
- ``readme:compare A B``: a Markdown table of the main metrics of two checkpoints (measured now).
- ``readme:table FILE [N]``: the N-th Markdown table (default 1) of a result file that ``make bench`` or
  ``make cma-experiment`` writes.

Placeholders name the sample checkpoints, so that retrained samples (``make samples``) need nothing but
``make readme``: ``{samples}`` (the folder), ``{first}``, ``{last}``, ``{sample:N}`` (the N-th by step,
from 0) and ``{first_h5}``, ``{last_h5}``, ``{sample_h5:N}`` (their dumps).

Commands run in a scratch folder where ``sample_checkpoints`` and ``benchmarks`` are the repository's
(read only) and ``docs`` is the repository's own (``make readme``: plots written there are the README's
figures) or a scratch one (``--check``, the test). Progress lines are off and the width is fixed, so a
block depends on nothing but the code and the samples; timings are never put in a block.

    python scripts/readme.py            rewrite README.md
    python scripts/readme.py --check    exit 1 and show a diff when README.md is stale
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = Path("sample_checkpoints") / "digits-mlp"
BLOCK = re.compile(r"(<!-- readme:(\w+) (.*?) -->\n)(.*?)(<!-- /readme -->)", re.S)
NC_AUDIT = str(Path(sys.executable).parent / "nc-audit")
COMPARED = ("nc1", "nc3", "nc4", "mir", "hdr")


def samples(root: Path) -> list[Path]:
    """The sample checkpoints that have their dump, ordered by the number in their names."""
    found = [p for p in (root / SAMPLES).glob("*.pt") if p.with_suffix(".h5").is_file()]
    return sorted(found, key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])


def expand(text: str, root: Path) -> str:
    """Fill in the sample placeholders (paths relative to the repository root)."""
    found = [p.relative_to(root) for p in samples(root)]
    if not found:
        raise SystemExit(f"no sample checkpoints in {root / SAMPLES}; run `make samples`")
    names = {"samples": str(SAMPLES), "first": str(found[0]), "last": str(found[-1])}
    names |= {"first_h5": str(found[0].with_suffix(".h5")), "last_h5": str(found[-1].with_suffix(".h5"))}

    def value(match: re.Match[str]) -> str:
        key, index = match.group(1), match.group(2)
        if index is not None:
            path = found[int(index)]
            return str(path.with_suffix(".h5") if key == "sample_h5" else path)
        return names[key]

    return re.sub(r"\{(samples|first_h5|last_h5|first|last|sample_h5|sample)(?::(\d+))?\}", value, text)


def execute(
    words: list[str], work: Path, env: dict[str, str], merge: bool = True
) -> subprocess.CompletedProcess:
    """Run ``nc-audit WORDS...`` in ``work`` with a fixed width, no progress lines and no CI variables."""
    if not words or words[0] != "nc-audit":
        raise SystemExit(f"readme: only nc-audit commands are run, not {shlex.join(words)!r}")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "NC_AUDIT_", "FORCE_COLOR"))}
    # a scratch cache and proof key: a README run never reads or creates the user's own
    env = {**base, "COLUMNS": "120", "PYTHONUNBUFFERED": "1", "NC_AUDIT_PROGRESS_INTERVAL": "1e9",
           "NO_COLOR": "1", "NC_AUDIT_CACHE": str(work / ".cache"),
           "NC_AUDIT_CACHE_KEY": str(work / "cache.key"), **env}  # fmt: skip
    return subprocess.run([NC_AUDIT, *words[1:]], cwd=work, env=env, text=True, timeout=900,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge else None)  # fmt: skip


_SETUPS_DONE: dict[str, list[str]] = {}


def setup(command: str, work: Path) -> list[str]:
    """Run ``python scripts/NAME.py ARGS`` (a repository script, nothing else) in ``work``, once; the lines
    a block shows for it: the command and its stdout."""
    words = shlex.split(command)
    if len(words) < 2 or words[0] != "python" or not re.fullmatch(r"scripts/\w+\.py", words[1]):
        raise SystemExit(f"readme: setup runs a repository script (python scripts/NAME.py), not {command!r}")
    if command not in _SETUPS_DONE:
        result = subprocess.run([sys.executable, str(ROOT / words[1]), *words[2:]], cwd=work, text=True,
                                timeout=900, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
        if result.returncode != 0:
            raise SystemExit(f"readme: setup {command!r} exited {result.returncode}:\n{result.stdout}")
        _SETUPS_DONE[command] = [f"$ {command}", *result.stdout.rstrip("\n").splitlines()]
    return _SETUPS_DONE[command]


def run_command(spec: str, work: Path) -> str:
    """A `readme:run` block's content (see the module doc)."""
    words = shlex.split(spec)
    options, env = {}, {}
    while words and re.fullmatch(r"[A-Za-z_]+=.*", words[0]):
        key, value = words.pop(0).split("=", 1)
        (env if key.isupper() else options)[key] = value
    prelude = setup(options["setup"], work) if "setup" in options else []
    result = execute(words, work, env, merge=not options.get("raw"))
    expected = int(options.get("exit", "0"))
    if result.returncode != expected:
        raise SystemExit(f"readme:run {spec!r} exited {result.returncode}, not {expected}:\n{result.stdout}")
    if options.get("raw"):
        return result.stdout.rstrip() + "\n"
    if "show" in options:
        text, fence = (work / options["show"]).read_text(encoding="utf-8"), Path(options["show"]).suffix[1:]
    else:  # the scratch folder's name is random: paths inside it are shown relative to it
        text, fence = result.stdout.replace(str(work) + os.sep, ""), "text"
    lines = [line.rstrip() for line in text.rstrip("\n").splitlines()]
    if "tail" in options:
        lines = lines[-int(options["tail"]) :]
    if "head" in options:
        lines = lines[: int(options["head"])]
    if "show" not in options:
        shown = "".join(f"{key}={value} " for key, value in env.items())
        lines = [*prelude, f"$ {shown}{shlex.join(words)}", *lines]
    return f"```{fence}\n" + "\n".join(lines) + "\n```\n"


def compare(spec: str, work: Path) -> str:
    """A `readme:compare A B` block: accuracy and the main metrics of two checkpoints beside their NC targets."""
    paths = shlex.split(spec)
    reports = []
    for path in paths:
        words = [
            "nc-audit",
            "measure",
            path,
            "--features",
            str(Path(path).with_suffix(".h5")),
            "--format",
            "json",
        ]
        result = execute(words, work, {}, merge=False)
        if result.returncode:
            raise SystemExit(f"readme:compare: {shlex.join(words)} exited {result.returncode}")
        reports.append(json.loads(result.stdout))
    names = [Path(path).stem for path in paths]
    lines = ["| metric | " + " | ".join(names) + " | NC target |", "|---|" + "---:|" * (len(paths) + 1)]
    rows = [("accuracy", [r["details"]["accuracy"] for r in reports], None)]
    rows += [(key, [r["metrics"][key] for r in reports], reports[0]["targets"][key]) for key in COMPARED]
    for key, values, target in rows:
        cells = [f"{value:.6g}" for value in values] + ["—" if target is None else f"{target:.6g}"]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table(spec: str, work: Path) -> str:
    """A `readme:table FILE [N]` block: the N-th Markdown table of a result file."""
    words = shlex.split(spec)
    text = (work / words[0]).read_text(encoding="utf-8")
    tables = re.findall(r"(?:^\|.*\|[ \t]*\n)+", text, re.M)
    index = int(words[1]) if len(words) > 1 else 1
    if len(tables) < index:
        raise SystemExit(f"readme:table {spec!r}: {words[0]} has {len(tables)} tables")
    return tables[index - 1]


KINDS: dict[str, Callable[[str, Path], str]] = {"run": run_command, "compare": compare, "table": table}


def regenerate(readme: str, work: Path) -> tuple[str, list[str]]:
    """README text with every block regenerated in ``work``, and the list of blocks (their markers)."""
    done: list[str] = []

    def replace(match: re.Match[str]) -> str:
        opening, kind, spec, _, closing = match.groups()
        if kind not in KINDS:
            raise SystemExit(f"unknown block kind readme:{kind}")
        done.append(f"readme:{kind} {spec}")
        print(f"readme: {kind} {spec}", file=sys.stderr, flush=True)
        return opening + KINDS[kind](expand(spec, ROOT), work) + closing

    return BLOCK.sub(replace, readme), done


def scratch(docs: Path | None) -> tempfile.TemporaryDirectory[str]:
    """A folder to run in: the repository's samples and result files, and ``docs`` (or a scratch one)."""
    folder = tempfile.TemporaryDirectory(prefix="nc-audit-readme-")
    work = Path(folder.name)
    for name in ("sample_checkpoints", "benchmarks"):
        (work / name).symlink_to(ROOT / name, target_is_directory=True)
    if docs is not None:
        (work / "docs").symlink_to(docs, target_is_directory=True)
    else:
        (work / "docs").mkdir()
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 if stale")
    args = parser.parse_args()
    path = ROOT / "README.md"
    current = path.read_text(encoding="utf-8")
    with scratch(None if args.check else ROOT / "docs") as work:
        fresh, blocks = regenerate(current, Path(work))
    if args.check:
        if fresh != current:
            sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), fresh.splitlines(True), "README.md", "regenerated"))  # fmt: skip
            return 1
        print(f"README.md is up to date ({len(blocks)} generated blocks)")
        return 0
    path.write_text(fresh, encoding="utf-8")
    print(f"README.md: {len(blocks)} blocks regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
