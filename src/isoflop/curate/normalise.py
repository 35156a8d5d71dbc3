"""Text normalisation: the smallest change that makes equal documents byte-equal.

The default corpus is source code, where indentation, case and punctuation carry meaning, so
only what no reader can see is changed: Unicode composition (NFC), line endings (CRLF and CR
become LF) and trailing whitespace on every line and at the end of the document.
"""

from __future__ import annotations

import unicodedata

import numba
import numpy as np
import pandas as pd

_LINE_BLANKS = " \t\f\v"  # what a line loses at its end (the line break stays)


def _nfc_lf(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _strip_line_ends(text: str) -> str:
    return "\n".join(line.rstrip(_LINE_BLANKS) for line in text.split("\n"))


def normalise_text(text: str) -> str:
    """NFC, LF line endings, no trailing whitespace on any line or after the last one."""
    return _strip_line_ends(_nfc_lf(text)).rstrip()


@numba.njit(cache=True, nogil=True)
def _flag_blank_before_break(buf, ends, flagged):  # pragma: no cover - compiled
    start = 0
    for d in range(len(ends)):
        for i in range(start + 1, ends[d]):
            if buf[i] == 10 and (buf[i - 1] == 32 or buf[i - 1] == 9 or buf[i - 1] == 12 or buf[i - 1] == 11):
                flagged[d] = True
                break
        start = ends[d]


def _blank_before_break(texts: list[str]) -> np.ndarray:
    """Per text, whether some line but the last ends in a blank (space, tab, form feed, vertical tab): one
    compiled pass over the bytes (a regex, or a Python loop over every line, was most of `isoflop dedup`'s
    time)."""
    encoded = [text.encode("utf-8", "surrogatepass") for text in texts]
    ends = np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)))
    flagged = np.zeros(len(texts), dtype=bool)
    _flag_blank_before_break(np.frombuffer(b"".join(encoded), dtype=np.uint8), ends, flagged)
    return flagged


def normalise_texts(texts) -> list[str]:
    """`normalise_text` of every text, with the line pass only for the texts that need it."""
    texts = [_nfc_lf(text) for text in texts]
    flagged = _blank_before_break(texts)
    return [(_strip_line_ends(text) if flag else text).rstrip() for text, flag in zip(texts, flagged)]


def normalise_documents(docs: pd.DataFrame, text_col: str = "text") -> pd.DataFrame:
    """A copy of `docs` with `text_col` normalised (see `normalise_text`); other columns untouched."""
    out = docs.copy()
    out[text_col] = normalise_texts(docs[text_col])
    return out


# Byte classes for `_flag_unfinished`: 1 makes a text unfinished at once (not ASCII, a CR), 2 is a line
# break, 3 a blank that a following line break strips.
_BYTE_CLASS = np.zeros(256, dtype=np.uint8)
_BYTE_CLASS[128:] = _BYTE_CLASS[13] = 1
_BYTE_CLASS[10] = 2
_BYTE_CLASS[[32, 9, 12, 11]] = 3
_TRAILING = np.zeros(256, dtype=np.bool_)
_TRAILING[[32, 9, 10, 11, 12, 13, 28, 29, 30, 31]] = True  # what str.rstrip() removes, in ASCII


@numba.njit(cache=True, nogil=True)
def _flag_unfinished(data, offsets, byte_class, trailing, flagged):  # pragma: no cover - compiled
    """Texts `normalise_text` may change: not ASCII, a CR, a blank before a line break, ending in whitespace."""
    for d in range(len(offsets) - 1):
        start, end = offsets[d], offsets[d + 1]
        if end > start and trailing[data[end - 1]]:
            flagged[d] = True
            continue
        previous = 0
        for i in range(start, end):
            kind = byte_class[data[i]]
            if kind == 1 or (kind == 2 and previous == 3):
                flagged[d] = True
                break
            previous = kind


@numba.njit(cache=True, nogil=True)
def _assemble(data, offsets, flagged, side, side_offsets, out, out_offsets):  # pragma: no cover - compiled
    """Texts in order into `out`: the flagged ones from `side` (in turn), the others from `data`."""
    k = 0
    for d in range(len(offsets) - 1):
        if flagged[d]:
            out[out_offsets[d]:out_offsets[d + 1]] = side[side_offsets[k]:side_offsets[k + 1]]
            k += 1
        else:
            out[out_offsets[d]:out_offsets[d + 1]] = data[offsets[d]:offsets[d + 1]]


def normalised_utf8(texts, lower: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of `normalise_text` of every text of an Arrow string array (`lower`: texts that are
    not ASCII also lower-cased, as `minhash.utf8_signatures` wants them), as one buffer and n + 1 offsets.

    Read straight from Arrow's own buffers: a text that is ASCII, holds no CR and has no blank at the end of
    a line is already normalised and is never turned into a Python string; only the others go through
    `normalise_text`. Nulls are empty texts.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if texts.type != pa.large_string():
        texts = pc.cast(texts, pa.large_string())
    texts = pc.fill_null(texts, "")
    _, offset_buffer, data_buffer = texts.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int64)[texts.offset:texts.offset + len(texts) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    flagged = np.zeros(len(texts), dtype=bool)
    _flag_unfinished(data, offsets, _BYTE_CLASS, _TRAILING, flagged)
    if not flagged.any():
        return data[offsets[0]:offsets[-1]], offsets - offsets[0]
    fixed = []
    for index in np.flatnonzero(flagged):
        text = normalise_text(texts[int(index)].as_py())
        fixed.append((text.lower() if lower and not text.isascii() else text).encode("utf-8", "surrogatepass"))
    side_offsets = np.zeros(len(fixed) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, fixed), dtype=np.int64, count=len(fixed)), out=side_offsets[1:])
    lengths = np.diff(offsets)
    lengths[flagged] = np.diff(side_offsets)
    out_offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_offsets[1:])
    out = np.empty(out_offsets[-1], dtype=np.uint8)
    _assemble(data, offsets, flagged, np.frombuffer(b"".join(fixed), dtype=np.uint8), side_offsets, out, out_offsets)
    return out, out_offsets
