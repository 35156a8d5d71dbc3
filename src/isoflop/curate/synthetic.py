"""Labelled near duplicates: copies of real documents with controlled edits, for measuring dedup.

Each edit kind changes about `rate` of a document's words: `swap` (neighbouring words trade
places), `insert` (new words), `delete`, `truncate` (the tail is cut) and `boilerplate` (a
header and footer of that many words are added). The true Jaccard similarity of each copy to its
source is measured, never assumed (`minhash.exact_jaccard`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from isoflop.curate.minhash import exact_jaccard

EDIT_KINDS = ("swap", "insert", "delete", "truncate", "boilerplate")
_BOILERPLATE = ("Copyright the authors. Licensed under the terms of the licence found in the LICENSE file "
                "of this distribution; provided as is, without warranty of any kind. Generated file, do not "
                "edit by hand. ").split()


def edit_text(text: str, kind: str, rate: float, rng: np.random.Generator) -> str:
    """`text` with about `rate` of its words edited by `kind` (see the module docstring)."""
    words = text.split(" ")
    n = max(1, int(round(rate * len(words))))
    if kind == "swap" and len(words) >= 2:
        for i in rng.choice(len(words) - 1, size=min(n, len(words) - 1), replace=False):
            words[i], words[i + 1] = words[i + 1], words[i]
    elif kind == "insert":
        for i in np.sort(rng.integers(0, len(words) + 1, size=n))[::-1]:
            words.insert(int(i), f"w{rng.integers(1 << 30):x}")
    elif kind == "delete" and len(words) >= 2:
        drop = set(rng.choice(len(words), size=min(n, len(words) - 1), replace=False).tolist())
        words = [w for i, w in enumerate(words) if i not in drop]
    elif kind == "truncate":
        words = words[: max(1, len(words) - n)]
    elif kind == "boilerplate":
        filler = [_BOILERPLATE[i % len(_BOILERPLATE)] for i in range(n)]
        words = filler[: n // 2] + ["\n"] + words + ["\n"] + filler[n // 2:]
    elif kind not in EDIT_KINDS:
        raise ValueError(f"unknown edit kind {kind!r}; known: {', '.join(EDIT_KINDS)}")
    return " ".join(words)


def inject_near_duplicates(docs: pd.DataFrame, n_copies: int, rates, seed: int, ngram: int = 5,
                           kinds=EDIT_KINDS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(docs plus `n_copies` edited copies, labels with one row per copy).

    Sources are drawn at random; each copy gets a random kind from `kinds` and rate from `rates`.
    Copy ids are `<source id>~copy<k>`. Labels: `id`, `source`, `kind`, `rate`, `jaccard` (exact,
    copy versus source).
    """
    rng = np.random.default_rng(seed)
    sources = rng.choice(len(docs), size=n_copies, replace=True)
    copies, labels = [], []
    for k, index in enumerate(sources):
        source = docs.iloc[index]
        kind, rate = kinds[rng.integers(len(kinds))], float(rates[rng.integers(len(rates))])
        text = edit_text(source["text"], kind, rate, rng)
        copy = source.copy()
        copy["id"], copy["text"] = f"{source['id']}~copy{k}", text
        copies.append(copy)
        labels.append({"id": copy["id"], "source": source["id"], "kind": kind, "rate": rate,
                       "jaccard": exact_jaccard(source["text"], text, ngram)})
    return pd.concat([docs, pd.DataFrame(copies)], ignore_index=True), pd.DataFrame(labels)


def stdlib_documents(max_docs: int, seed: int = 0) -> pd.DataFrame:
    """A sample of the standard library's .py files as documents (`code` and `tests` domains).

    Small real corpora for tests and benchmarks without the corpus stage; ids are the relative paths.
    """
    import sysconfig
    from pathlib import Path

    root = Path(sysconfig.get_paths()["stdlib"])
    paths = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts and "__pycache__" not in p.parts)
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(paths), size=min(max_docs, len(paths)), replace=False))
    rows = []
    for index in chosen:
        rel = paths[index].relative_to(root)
        domain = "tests" if {"test", "tests", "idle_test"} & set(rel.parts[:-1]) else "code"
        rows.append({"id": f"{domain}:{rel.as_posix()}", "domain": domain,
                     "text": paths[index].read_bytes().decode("utf-8", "replace")})
    return pd.DataFrame(rows)


def _shingle_codes(word_ids: np.ndarray, ngram: int, bits: int) -> np.ndarray:
    """The distinct word n-grams of a document as exact integers (`ngram` x `bits` must fit 63 bits)."""
    codes = np.zeros(max(len(word_ids) - ngram + 1, 1), dtype=np.int64)
    for offset in range(ngram):
        codes = (codes << bits) | word_ids[offset:offset + len(codes)]
    return np.unique(codes)


def planted_corpus(n_originals: int, seed: int, *, exact_rate: float = 0.05, near_rate: float = 0.05,
                   near_swaps: float = 0.01, words: tuple[int, int] = (300, 1100), vocab_size: int = 4000,
                   batch_originals: int = 10_000, ngram: int = 5):
    """A synthetic corpus with planted duplicates at known rates, generated batch by batch (a corpus of
    any size never sits in memory): yields (documents, labels) per `batch_originals` originals.

    Originals are lines of 12 words drawn uniformly from `vocab_size` distinct random lower-case words
    (2-9 letters), `words` long (uniform), so two originals share almost no 5-gram shingle and pass the
    Gopher rules. Each original gets, independently, an exact copy with probability `exact_rate` (half
    of them with CRLF line endings and trailing blanks: equal only after normalisation) and a near copy
    with probability `near_rate` (`near_swaps` of its words swapped with a neighbour). Ids:
    `doc-<8 digits>`, copies `<original id>~exact` and `<original id>~near`, so every original sorts
    before its copies and is the one a dedup keeps. Labels: `id`, `source`, `kind` (exact or near),
    `jaccard` (the exact Jaccard similarity of the copy's `ngram`-word shingles to its original's, as
    `minhash.exact_jaccard` measures it). Deterministic from `seed`.
    """
    from operator import itemgetter

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = set()
    while len(vocab) < vocab_size:
        vocab.add("".join(rng.choice(letters, rng.integers(2, 10))))
    vocab = sorted(vocab)
    bits = int(np.ceil(np.log2(len(vocab))))
    # word k followed by a blank, or (every 12th word) by a line break: index k or k + len(vocab)
    pieces = [word + " " for word in vocab] + [word + "\n" for word in vocab]
    for start in range(0, n_originals, batch_originals):
        count = min(batch_originals, n_originals - start)
        lengths = rng.integers(words[0], words[1] + 1, count)
        exact, near, crlf = (rng.random(count) < rate for rate in (exact_rate, near_rate, 0.5))
        ids, texts, labels = [], [], []
        for k in range(count):
            word_ids = rng.integers(0, len(vocab), lengths[k])
            line_end = (np.arange(lengths[k]) % 12 == 11) * len(vocab)
            text = "".join(itemgetter(*(word_ids + line_end).tolist())(pieces)).rstrip()
            doc_id = f"doc-{start + k:08d}"
            ids.append(doc_id)
            texts.append(text)
            if exact[k]:
                ids.append(f"{doc_id}~exact")
                texts.append(text.replace("\n", "  \r\n") + " \n" if crlf[k] else text)
                labels.append({"id": ids[-1], "source": doc_id, "kind": "exact", "jaccard": 1.0})
            if near[k]:
                edited = word_ids.copy()
                for i in rng.choice(len(edited) - 1, size=max(1, int(near_swaps * len(edited))), replace=False):
                    edited[i], edited[i + 1] = edited[i + 1], edited[i]
                ids.append(f"{doc_id}~near")
                texts.append("".join(itemgetter(*(edited + line_end).tolist())(pieces)).rstrip())
                a, b = _shingle_codes(word_ids, ngram, bits), _shingle_codes(edited, ngram, bits)
                shared = len(np.intersect1d(a, b, assume_unique=True))
                labels.append({"id": ids[-1], "source": doc_id, "kind": "near",
                               "jaccard": shared / (len(a) + len(b) - shared)})
        yield (pd.DataFrame({"id": ids, "text": texts}),
               pd.DataFrame(labels, columns=["id", "source", "kind", "jaccard"]))
