"""Gopher-style quality rules (Rae et al. 2021, appendix A), measured per document.

Every rule is a statistic of one document compared with a threshold from the config; a threshold
of None switches the rule off. The statistics are computed once (`quality_stats`), so a report can
show their distributions and the thresholds can be tuned without recomputing them.

Words are whitespace-separated tokens, as in Gopher. Repetition is measured on exact word
n-grams: a "top n-gram" rule looks at the share of word characters covered by the single most
frequent n-gram (n = 2, 3, 4); a "duplicate n-gram" rule at the share covered by every repeated
occurrence of an n-gram (n = 5 ... 10), the first occurrence not counted.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

TOP_NGRAM_SIZES = (2, 3, 4)
DUPLICATE_NGRAM_SIZES = (5, 6, 7, 8, 9, 10)

# rule name -> (statistic column, "min" or "max"): a document fails when the statistic is below a
# "min" threshold or above a "max" one. Order matters only for reading the report.
RULES: dict[str, tuple[str, str]] = {
    "min_words": ("words", "min"),
    "max_words": ("words", "max"),
    "min_mean_word_length": ("mean_word_length", "min"),
    "max_mean_word_length": ("mean_word_length", "max"),
    "max_symbol_word_ratio": ("symbol_word_ratio", "max"),
    "max_digit_fraction": ("digit_fraction", "max"),
    "min_alpha_word_fraction": ("alpha_word_fraction", "min"),
    "max_line_length": ("max_line_length", "max"),
    "max_duplicate_line_fraction": ("duplicate_line_fraction", "max"),
    "max_duplicate_line_char_fraction": ("duplicate_line_char_fraction", "max"),
    **{f"max_top_{n}gram_char_fraction": (f"top_{n}gram_char_fraction", "max") for n in TOP_NGRAM_SIZES},
    **{
        f"max_duplicate_{n}gram_char_fraction": (f"duplicate_{n}gram_char_fraction", "max")
        for n in DUPLICATE_NGRAM_SIZES
    },
}


def _ngram_ids(word_ids: np.ndarray, n: int, previous: np.ndarray | None) -> np.ndarray:
    """Dense ids of the word n-grams, built from the (n-1)-gram ids so equality stays exact."""
    if previous is None:
        return word_ids
    pairs = previous[:-1].astype(np.int64) * (int(word_ids.max()) + 1) + word_ids[n - 1 :]
    return np.unique(pairs, return_inverse=True)[1]


def _repetition_stats(words: list[str]) -> dict[str, float]:
    """Top-n-gram and duplicate-n-gram character fractions of one document's words."""
    stats = {f"top_{n}gram_char_fraction": 0.0 for n in TOP_NGRAM_SIZES}
    stats |= {f"duplicate_{n}gram_char_fraction": 0.0 for n in DUPLICATE_NGRAM_SIZES}
    if len(words) < 2:
        return stats
    word_ids = np.unique(np.array(words, dtype=object), return_inverse=True)[1]
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    total_chars = lengths.sum()
    prefix_chars = np.concatenate([[0], np.cumsum(lengths)])
    ids = None
    for n in range(1, max(DUPLICATE_NGRAM_SIZES) + 1):
        if len(words) < n:
            break
        ids = _ngram_ids(word_ids, n, ids)
        if n in TOP_NGRAM_SIZES:
            counts = np.bincount(ids)
            top = int(np.argmax(counts))
            first = int(np.argmax(ids == top))
            ngram_chars = prefix_chars[first + n] - prefix_chars[first]
            stats[f"top_{n}gram_char_fraction"] = float(counts[top] * ngram_chars / total_chars)
        if n in DUPLICATE_NGRAM_SIZES:
            first_seen = np.zeros(len(ids), dtype=bool)
            first_seen[np.unique(ids, return_index=True)[1]] = True
            starts = np.flatnonzero(~first_seen)
            # Mark the words covered by any repeated occurrence: +1 at its start, -1 after its end.
            cover = np.zeros(len(words) + 1, dtype=np.int64)
            np.add.at(cover, starts, 1)
            np.add.at(cover, starts + n, -1)
            covered = np.cumsum(cover[:-1]) > 0
            stats[f"duplicate_{n}gram_char_fraction"] = float(lengths[covered].sum() / total_chars)
    return stats


_ASCII_WORD_WITH_A_LETTER = re.compile(r"\S*[A-Za-z]\S*")


def _digits(text: str) -> int:
    """How many characters of `text` are digits (str.isdigit); in ASCII text, ten substring counts in C."""
    if text.isascii():
        return sum(text.count(digit) for digit in "0123456789")
    return sum(map(str.isdigit, text))


def _words_with_a_letter(text: str, words: list[str]) -> int:
    """How many of the whitespace-separated `words` of `text` hold a letter (str.isalpha)."""
    if text.isascii():  # one regex pass: a match is a whole word holding an ASCII letter
        return len(_ASCII_WORD_WITH_A_LETTER.findall(text))
    return sum(any(ch.isalpha() for ch in word) for word in words)


def document_stats(text: str) -> dict[str, float]:
    """Every statistic a rule in `RULES` looks at, for one document."""
    words = text.split()
    n_words = len(words)
    lines = text.split("\n")
    content_lines = [line for line in lines if line.strip()]
    seen: set[str] = set()
    duplicate_lines = duplicate_line_chars = 0
    for line in content_lines:
        if line in seen:
            duplicate_lines += 1
            duplicate_line_chars += len(line)
        seen.add(line)
    content_chars = sum(map(len, content_lines))
    n_chars = max(len(text), 1)
    return {
        "words": n_words,
        "mean_word_length": (sum(map(len, words)) / n_words) if n_words else 0.0,
        "symbol_word_ratio": (text.count("#") + text.count("...") + text.count("\u2026")) / max(n_words, 1),
        "digit_fraction": _digits(text) / n_chars,
        "alpha_word_fraction": (_words_with_a_letter(text, words) / n_words) if n_words else 0.0,
        "max_line_length": max(map(len, lines)),
        "duplicate_line_fraction": duplicate_lines / max(len(content_lines), 1),
        "duplicate_line_char_fraction": duplicate_line_chars / max(content_chars, 1),
        **_repetition_stats(words),
    }


def quality_stats(texts) -> pd.DataFrame:
    """One row of `document_stats` per text, in order."""
    return pd.DataFrame([document_stats(text) for text in texts])


def failing_rules(stats: pd.DataFrame, thresholds: dict[str, float | None]) -> pd.DataFrame:
    """A boolean frame (documents x rules): True where the document fails that rule.

    `thresholds` maps rule names (keys of `RULES`) to a threshold, or None to switch a rule off.
    """
    fails = {}
    for rule, threshold in thresholds.items():
        if threshold is None:
            continue
        column, kind = RULES[rule]
        values = stats[column].to_numpy()
        fails[rule] = values < threshold if kind == "min" else values > threshold
    return pd.DataFrame(fails, index=stats.index, columns=list(fails), dtype=bool)


def domain_thresholds(quality_cfg: dict, domain: str) -> dict[str, float | None]:
    """The thresholds that apply to `domain`: `rules`, overridden by `domain_rules[domain]`."""
    return quality_cfg["rules"] | quality_cfg["domain_rules"].get(domain, {})


def apply_quality_rules(docs: pd.DataFrame, quality_cfg: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(documents passing every rule of their domain, rule failures: documents x rules, all domains).

    Works on any shard: each document is judged alone. `quality_cfg` is the config's `curate.quality`.
    """
    stats = quality_stats(docs["text"])
    stats.index = docs.index
    fails = [failing_rules(stats.loc[members.index], domain_thresholds(quality_cfg, domain))
             for domain, members in docs.groupby("domain", sort=True)]
    fails = pd.concat(fails).reindex(docs.index).fillna(False).astype(bool) if fails else pd.DataFrame(index=docs.index)
    return docs[~fails.any(axis=1)], fails
