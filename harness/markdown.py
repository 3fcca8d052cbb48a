"""User text in Markdown, shown as written: a label like `*x*` or `<b>` is data, not markup."""
from __future__ import annotations

import html
import re

# What inline Markdown (GitHub's) acts on anywhere in a line; < > & are HTML-escaped instead.
# An underscore inside a word (seq_len) is never emphasis, so it is left readable.
_INLINE = re.compile(r"[\\`*\[\]|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def literal(value: object) -> str:
    """`value` as Markdown that renders to exactly its text, on one line (fit for a table cell)."""
    text = html.escape(str(value), quote=False)
    return _INLINE.sub(lambda match: "\\" + match.group(0), text).replace("\r", " ").replace("\n", " ")
