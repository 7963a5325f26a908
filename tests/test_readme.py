"""README.md cannot drift: every generated block (marked `<!-- readme:... -->`, see scripts/readme.py) is
regenerated here from the real commands, in a scratch folder, and must equal what the README shows.
When this fails, run `make readme` and commit the result.
"""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

import pytest
from runs import ROOT

pytestmark = pytest.mark.slow


def load_generator():  # scripts/ is not a package: load the script as a module
    spec = importlib.util.spec_from_file_location("readme_generator", ROOT / "scripts" / "readme.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_every_generated_readme_block_is_up_to_date() -> None:
    generator = load_generator()
    current = (ROOT / "README.md").read_text(encoding="utf-8")
    with generator.scratch(None) as work:  # plots go to a scratch docs/, the repository stays untouched
        fresh, blocks = generator.regenerate(current, Path(work))
    assert len(blocks) >= 10, blocks
    if fresh != current:
        diff = "".join(
            difflib.unified_diff(current.splitlines(True), fresh.splitlines(True), "README.md", "regenerated")
        )
        pytest.fail(f"README.md is stale; run `make readme`:\n{diff}")


def test_the_generator_catches_a_stale_block(tmp_path: Path) -> None:
    """A block whose output no longer matches is rewritten: the comparison above can fail."""
    generator = load_generator()
    stale = "<!-- readme:run nc-audit --version -->\n```text\n$ nc-audit --version\nnc-audit 0.0.0\n```\n<!-- /readme -->\n"
    with generator.scratch(None) as work:
        fresh, blocks = generator.regenerate(stale, Path(work))
    assert blocks == ["readme:run nc-audit --version"]
    assert "nc-audit 0.0.0" not in fresh and fresh.startswith(
        "<!-- readme:run nc-audit --version -->\n```text\n$ nc-audit --version\nnc-audit 0.1.0\n```"
    )


def test_placeholders_name_the_samples_whatever_make_samples_wrote() -> None:
    generator = load_generator()
    found = generator.samples(ROOT)
    assert generator.expand("{first} {last} {sample:2} {last_h5}", ROOT).split() == [
        str(found[0].relative_to(ROOT)), str(found[-1].relative_to(ROOT)), str(found[2].relative_to(ROOT)),
        str(found[-1].with_suffix(".h5").relative_to(ROOT)),
    ]  # fmt: skip
