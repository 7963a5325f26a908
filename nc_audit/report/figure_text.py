"""Text on a figure shown as written: matplotlib reads ``$...$`` in any text as mathtext, so a checkpoint,
data file or label named ``a$\\frac$.pt`` in a title stopped ``measure --html``, ``prune``, the studies
and ``interpolate --plot`` with a parse error, and ``$x^2$`` was typeset instead of shown.

:func:`literal_texts` runs on every figure before it is drawn (nc_audit.report.plots.figure_png): titles,
the suptitle, axis labels, free texts and legend entries — the places an input can reach — lose
mathtext. Tick labels keep it (a log axis writes ``10^{-2}`` with it); a figure that puts input in its
tick labels escapes ``$`` there itself (nc_audit.report.studies.tick_text).
"""

from __future__ import annotations

import re

from matplotlib.figure import Figure
from matplotlib.text import Text

#: A content hash in a name (sha256 of a checkpoint, a Hugging Face snapshot or commit id): 16+ hex digits.
_HASH = re.compile(r"(?<![0-9A-Za-z])([0-9a-fA-F]{12})[0-9a-fA-F]{4,}(?![0-9A-Za-z])")
ELLIPSIS = "…"


def fit_text(text: str, limit: int) -> str:
    """``text`` short enough for a title, tick or legend of ``limit`` characters: content hashes cut to their
    first 12 digits (``3f2a9c01be77…``), then, if still too long, the middle replaced by an ellipsis
    (``runs/very-long…/epoch_0750.pt``), keeping the end, where a file name says the most."""
    text = _HASH.sub(lambda match: match.group(1) + ELLIPSIS, text)
    if len(text) <= limit:
        return text
    tail = (limit - 1) * 3 // 5
    return text[: limit - 1 - tail] + ELLIPSIS + text[len(text) - tail :]


def literal_texts(figure: Figure) -> None:
    """Turn mathtext off for every title, axis label, free text and legend entry of ``figure``."""
    texts: list[Text] = [*figure.texts]
    for legend in figure.legends:
        texts += legend.get_texts()
    for ax in figure.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        texts += [child for child in ax.get_children() if isinstance(child, Text)]  # left/right titles
        own = ax.get_legend()
        if own is not None:
            texts += own.get_texts()
    for text in texts:
        text.set_parse_math(False)
