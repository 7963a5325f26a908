"""Text from inputs made safe for each output: the terminal, Markdown, XML (JUnit) and HTML.

Paths, dump attributes (``checkpoint_path``, ``checkpoint_sha256``, ``dataset``), head names and
state-dict keys all come from files a pull request may control. Printed raw, an ESC sequence can
rewrite the terminal or a CI log, a newline can forge a ``PASS`` line, a ``[red]`` is taken as Rich
markup, a ``|`` breaks a Markdown table and a control character makes JUnit XML unparseable.

Every renderer and the CLI's error printer pass such strings through one of these functions:

- :func:`visible` — control characters (C0, DEL, C1), bidirectional overrides and lone surrogates
  (a non-UTF-8 file name decoded with ``surrogateescape``) shown as escapes (``\\x1b``, ``\\n``,
  ``\\u202e``, ``\\xff``), so the text is one line of printable characters that any encoder accepts;
- :func:`terminal` — :func:`visible`, then Rich markup escaped (for text printed with ``markup=True``);
- :func:`markdown_text`, :func:`markdown_cell`, :func:`markdown_code` — for a Markdown line, table cell
  or inline code;
- :func:`xml_text` — for an XML attribute or text node (ElementTree escapes ``&<>"``; this removes the
  characters XML 1.0 forbids);
- :func:`html_text` — for HTML.
"""

from __future__ import annotations

import html
import re
from typing import Any

#: C0 controls (tab and newline included: the outputs are line-oriented), DEL, C1 controls, the Unicode
#: bidirectional controls that reorder text on screen, the line/paragraph separators, lone surrogates
#: (undecodable bytes of a file name) and the non-characters U+FFFE/U+FFFF.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that surrogateescape could not decode: show the byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: Any) -> str:
    """``str(value)`` with every unsafe character shown as an escape (see the module docstring)."""
    return _UNSAFE.sub(_escape_one, str(value))


#: A ``[`` that may open a Rich tag, with the backslashes before it.
_TAG_OPENER = re.compile(r"(\\*)(\[[a-z#/@])")


def terminal(value: Any) -> str:
    """Text for a Rich console that renders markup: :func:`visible`, then every ``[`` that may open a tag
    escaped — closed in this text or not, so that two escaped pieces printed side by side (``a[bold`` and
    ``x]``) cannot form a tag either (Rich prints ``\\[`` as ``[`` whether a tag follows or not)."""
    text = _TAG_OPENER.sub(
        lambda match: f"{match.group(1)}{match.group(1)}\\{match.group(2)}", visible(value)
    )
    if text.endswith("\\") and not text.endswith("\\\\"):  # a last backslash would escape the next tag
        text += "\\"
    return text


_MARKDOWN_SPECIAL = re.compile(r"([\\`\[\]]|<(?=[A-Za-z/!?]))")


def markdown_text(value: Any) -> str:
    """Text for a Markdown line: one line; backslashes, backticks, ``[ ]`` (links) and a ``<`` that could
    open an HTML tag escaped with a backslash, so an input cannot open code, HTML or a link."""
    return visible(_MARKDOWN_SPECIAL.sub(r"\\\1", str(value)))


def markdown_cell(value: Any) -> str:
    """Text for a Markdown table cell: :func:`markdown_text` with ``|`` escaped too."""
    return markdown_text(value).replace("|", "\\|")


def markdown_code(value: Any) -> str:
    """Inline code: one line; backticks replaced (a code span cannot escape them), pipes escaped for tables."""
    return "`" + visible(value).replace("`", "'").replace("|", "\\|") + "`"


_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: Any) -> str:
    """Text for XML 1.0: :func:`visible` (so no character XML forbids remains; ElementTree escapes the rest)."""
    text = visible(value)
    return _XML_FORBIDDEN.sub("\ufffd", text)  # nothing is left after visible(); kept as a guard


def html_text(value: Any) -> str:
    """Text for HTML: :func:`visible`, then ``& < > " '`` escaped."""
    return html.escape(visible(value), quote=True)


_SURROGATE = re.compile("[\ud800-\udfff]")


def json_safe(text: str) -> str:
    """JSON text whose lone surrogates (from non-UTF-8 file names) are written as ``\\udcXX`` escapes,
    which JSON readers decode back to the same string; any UTF-8 encoder accepts the result."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
