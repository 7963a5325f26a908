"""Text on a figure shown as written: matplotlib reads ``$...$`` in any text as mathtext, so a checkpoint,
data file or label named ``a$\\frac$.pt`` in a title stopped ``measure --html``, ``prune``, the studies
and ``interpolate --plot`` with a parse error, and ``$x^2$`` was typeset instead of shown.

:func:`literal_texts` runs on every figure before it is drawn (nc_audit.report.plots.figure_png): titles,
the suptitle, axis labels, free texts and legend entries — the places an input can reach — lose
mathtext. Tick labels keep it (a log axis writes ``10^{-2}`` with it); a figure that puts input in its
tick labels escapes ``$`` there itself (nc_audit.report.studies.tick_text).
"""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.text import Text


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
