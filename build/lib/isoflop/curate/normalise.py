"""Text normalisation: the smallest change that makes equal documents byte-equal.

The default corpus is source code, where indentation, case and punctuation carry meaning, so
only what no reader can see is changed: Unicode composition (NFC), line endings (CRLF and CR
become LF) and trailing whitespace on every line and at the end of the document.
"""

from __future__ import annotations

import re
import unicodedata

import pandas as pd

_TRAILING_SPACE = re.compile(r"[ \t\f\v]+$", flags=re.MULTILINE)


def normalise_text(text: str) -> str:
    """NFC, LF line endings, no trailing whitespace on any line or after the last one."""
    text = unicodedata.normalize("NFC", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _TRAILING_SPACE.sub("", text).rstrip()


def normalise_documents(docs: pd.DataFrame, text_col: str = "text") -> pd.DataFrame:
    """A copy of `docs` with `text_col` normalised (see `normalise_text`); other columns untouched."""
    out = docs.copy()
    out[text_col] = [normalise_text(text) for text in docs[text_col]]
    return out
