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


def split_validation(docs: pd.DataFrame, val_fraction: float, seed: int,
                     id_col: str = "id", domain_col: str = "domain") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split `docs` into (train, val), each in the input order.

    A document goes to val when the hash of (seed, id) falls below `val_fraction`, so adding
    documents never moves others between splits. Stratified by domain: a domain with two or more
    documents and none drawn gets its lowest-hashing document in val (the only case where a new
    document can move one back to train).
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    u = pd.Series(id_uniform(docs[id_col], seed), index=docs.index)
    is_val = u < val_fraction
    if val_fraction > 0:
        for _, members in u.groupby(docs[domain_col]):
            if len(members) >= 2 and not is_val[members.index].any():
                is_val[members.idxmin()] = True
    return docs[~is_val], docs[is_val]
