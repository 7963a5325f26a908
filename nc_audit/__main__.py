"""`python -m nc_audit` runs the command-line interface.

``python -m`` puts the working folder first on ``sys.path``; in CI that folder is a pull request's
checkout, so a ``./matplotlib.py`` or ``./transformers.py`` there would be imported in place of the
library. It is taken off again before anything else is imported (a user's ``--model`` module is still
found in the working folder: nc_audit.models.factories looks there for it on purpose).
"""

import os
import sys

_first = sys.path[0] if sys.path else None
if _first is not None and (
    _first in ("", os.curdir) or os.path.realpath(_first) == os.path.realpath(os.getcwd())
):
    del sys.path[0]

from nc_audit.cli import main  # noqa: E402

main()
