"""Properties (issue 21, deliver 7): streamed --data specs and untrusted image bytes.

- A ``--data-arg`` list composes into a spec whose parsed arguments are the same pairs, sorted, and whose
  identity (the cache-key part) does not depend on ``--workers``; a malformed item is an InputError.
- Any bytes written as ``x.png`` in an image folder either decode to a finite (3, 4, 4) tensor or are
  refused with an InputError naming the file: never another exception, never a hang.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nc_audit.core.errors import InputError
from nc_audit.io.data.image_folder import Transform
from nc_audit.io.data.stream_spec import compose, parse_stream_spec

KEYS = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(lambda k: k != "workers")
VALUES = st.text(
    alphabet=st.characters(blacklist_characters="&?\n", blacklist_categories=("Cs",)), max_size=12
)


@given(st.dictionaries(KEYS, VALUES, max_size=5), st.integers(0, 8))
def test_composed_specs_parse_back_and_the_identity_ignores_workers(
    args: dict[str, str], workers: int
) -> None:
    items = [f"{k}={v}" for k, v in args.items()]
    spec = parse_stream_spec(compose("pkg.module:make", items, workers=workers))
    assert spec is not None and spec.kind == "callable"
    assert dict(spec.args) == {**args, **({"workers": str(workers)} if workers else {})}
    without = parse_stream_spec(compose("pkg.module:make", items) or "pkg.module:make")
    assert without is not None and spec.identity == without.identity and spec.workers == workers


@given(st.text(max_size=20).filter(lambda t: "=" not in t and t.strip() and "&" not in t))
def test_an_item_without_equals_is_refused(item: str) -> None:
    try:
        compose("pkg.module:make", [item])
    except InputError:
        return
    raise AssertionError(f"{item!r} accepted")


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda a: _png(np.asarray(a, np.uint8).reshape(3, 3, 3)),
            st.lists(st.integers(0, 255), min_size=27, max_size=27),
        ),
    ),
    st.integers(0, 60),
    st.binary(max_size=8),
)
def test_any_image_bytes_decode_or_are_refused_naming_the_file(data: bytes, cut: int, junk: bytes) -> None:
    mangled = data[:cut] + junk + data[cut + len(junk) :] if data.startswith(b"\x89PNG") and junk else data
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.png"
        path.write_bytes(mangled)
        try:
            tensor = Transform((4, 4), 3, (0.5,) * 3, (0.25,) * 3)(path)
        except InputError as error:
            assert str(error).startswith(str(path)) and "\n" not in str(error)
            return
        assert tuple(tensor.shape) == (3, 4, 4) and bool(tensor.isfinite().all())
