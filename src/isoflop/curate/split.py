"""The validation split: a pure function of each document's id and the study seed."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd


def id_uniform(ids, seed: int) -> np.ndarray:
    """A number in [0, 1) per id, from a hash of (seed, id): stable across runs, shards and machines."""
    salt = f"{seed}:".encode()
    return np.array(
        [int.from_bytes(hashlib.blake2b(salt + str(i).encode(), digest_size=8).digest(), "big") / 2.0**64
         for i in ids],
        dtype=np.float64,
    )


class ValidationSplit:
    """The validation split of documents seen in parts, in any order (the final gather streams them).

    `observe` every part first (ids and domains), then `is_val(ids)` answers for any part: a document goes to
    val when the hash of (seed, id) falls below `val_fraction`, so adding documents never moves others between
    splits. Stratified by domain: a domain with two or more documents and none drawn gets its lowest-hashing
    document in val (the only case where a new document can move one back to train). What it holds is a few
    numbers per domain.
    """

    def __init__(self, val_fraction: float, seed: int):
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.val_fraction, self.seed = val_fraction, seed
        self.counts: dict[str, int] = {}
        self.drawn: set[str] = set()  # domains with a document drawn by its hash
        self.lowest: dict[str, tuple[float, str]] = {}  # per domain, its lowest (hash, id)

    def observe(self, ids, domains) -> None:
        ids = [str(i) for i in ids]
        u = id_uniform(ids, self.seed)
        for doc_id, domain, value in zip(ids, domains, u):
            self.counts[domain] = self.counts.get(domain, 0) + 1
            if value < self.val_fraction:
                self.drawn.add(domain)
            if domain not in self.lowest or (value, doc_id) < self.lowest[domain]:
                self.lowest[domain] = (value, doc_id)

    def is_val(self, ids) -> np.ndarray:
        fallback = set()
        if self.val_fraction > 0:
            fallback = {self.lowest[domain][1] for domain, n in self.counts.items()
                        if n >= 2 and domain not in self.drawn}
        ids = [str(i) for i in ids]
        return (id_uniform(ids, self.seed) < self.val_fraction) | np.array([i in fallback for i in ids], dtype=bool)


def split_validation(docs: pd.DataFrame, val_fraction: float, seed: int,
                     id_col: str = "id", domain_col: str = "domain") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split `docs` into (train, val), each in the input order, by `ValidationSplit`'s rule."""
    split = ValidationSplit(val_fraction, seed)
    split.observe(docs[id_col], docs[domain_col])
    is_val = split.is_val(docs[id_col])
    return docs[~is_val], docs[is_val]
