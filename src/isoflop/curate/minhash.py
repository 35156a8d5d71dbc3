"""MinHash signatures of word-shingle sets, and the LSH parameters that go with them.

Signatures use one-permutation hashing with optimal densification (Li, Owen and Zhang 2012;
Shrivastava 2017): every shingle is hashed once to 64 bits; the high bits pick one of `num_perm`
bins and the low 32 bits are its value; a bin keeps its smallest value, and an empty bin borrows
the value of the first non-empty bin along a fixed pseudo-random probe sequence of its own. Two
signatures agree in a position with probability equal to the Jaccard similarity of the shingle
sets, as with `num_perm` independent permutations, at the cost of one hash per shingle instead
of `num_perm` (the reason this is over 20x faster than datasketch; see bench/bench_dedup.py).

The whole text-to-signature path is one compiled loop (numba) over the UTF-8 bytes: lower-cased
words are runs of letters, digits, underscores and non-ASCII bytes; a shingle is `ngram`
consecutive words; a document with fewer words has one shingle of all of them.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache

import numba
import numpy as np

from isoflop.errors import UserError

_EMPTY = np.uint64(1 << 32)  # larger than any 32-bit bin value
_PROBE_SEED = 0x15F10B  # fixed: signatures must agree across runs, machines and study seeds
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_SHINGLE_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so the sliding window loses no bits


@dataclass(frozen=True)
class MinHashParams:
    """Everything that determines a signature and its LSH buckets."""

    num_perm: int = 128
    ngram: int = 5
    bands: int = 16
    rows: int = 8
    threshold: float = 0.8

    def __post_init__(self):
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")

    @classmethod
    def from_config(cls, near_dup_cfg: dict) -> MinHashParams:
        """Params from the config's `curate.near_dup` object; bands and rows chosen when null."""
        bands, rows = near_dup_cfg["bands"], near_dup_cfg["rows"]
        if (bands is None) != (rows is None):
            raise UserError("curate.near_dup.bands and curate.near_dup.rows are set together, or both left null")
        if bands is None:
            bands, rows = optimal_bands_rows(
                near_dup_cfg["threshold"], near_dup_cfg["num_perm"], near_dup_cfg["false_negative_weight"])
        try:
            return cls(num_perm=near_dup_cfg["num_perm"], ngram=near_dup_cfg["ngram"], bands=bands, rows=rows,
                       threshold=near_dup_cfg["threshold"])
        except ValueError as err:
            raise UserError(f"curate.near_dup: {err}") from None

    def to_dict(self) -> dict:
        return asdict(self)


def s_curve(similarity, bands: int, rows: int):
    """Probability that two documents of Jaccard `similarity` share at least one LSH bucket."""
    return 1.0 - (1.0 - np.asarray(similarity, dtype=np.float64) ** rows) ** bands


@lru_cache(maxsize=64)  # a grid search over every (bands, rows): once per setting and process
def optimal_bands_rows(threshold: float, num_perm: int, false_negative_weight: float = 0.5,
                       grid_points: int = 1001) -> tuple[int, int]:
    """The (bands, rows) with bands x rows <= num_perm minimising the weighted error areas of the S-curve.

    Error = (1 - w) * area under the curve below `threshold` (spurious candidates) + w * area above
    the curve beyond it (missed duplicates), with w = `false_negative_weight`.
    """
    s = np.linspace(0.0, 1.0, grid_points)
    below, above = s < threshold, s >= threshold
    best, best_error = (1, 1), np.inf
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p = s_curve(s, bands, rows)
            false_pos = np.trapezoid(np.where(below, p, 0.0), s)
            false_neg = np.trapezoid(np.where(above, 1.0 - p, 0.0), s)
            error = (1 - false_negative_weight) * false_pos + false_negative_weight * false_neg
            if error < best_error - 1e-12:
                best, best_error = (bands, rows), error
    return best


def probe_sequences(num_perm: int) -> np.ndarray:
    """Per bin, the order in which an empty bin looks at the other bins to borrow a value (fixed seed)."""
    rng = np.random.default_rng(_PROBE_SEED + num_perm)
    probes = np.empty((num_perm, max(num_perm - 1, 1)), dtype=np.int64)
    for j in range(num_perm):
        others = np.delete(np.arange(num_perm), j) if num_perm > 1 else np.zeros(1, dtype=np.int64)
        probes[j] = rng.permutation(others)
    return probes


def _band_mixers(rows: int) -> np.ndarray:
    """Odd 64-bit constants that combine the values of one band into its bucket key (fixed seed)."""
    rng = np.random.default_rng(_PROBE_SEED + 7 * rows)
    return rng.integers(0, 2**63, size=rows, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


# Per byte: 0 outside words, else the byte as hashed (ASCII upper case folded to lower case).
_WORD_BYTE = np.zeros(256, dtype=np.uint8)
for _byte in b"0123456789abcdefghijklmnopqrstuvwxyz_":
    _WORD_BYTE[_byte] = _byte
for _byte in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    _WORD_BYTE[_byte] = _byte + 32
_WORD_BYTE[128:] = np.arange(128, 256)  # UTF-8 lead and continuation bytes: non-ASCII letters stay inside words


@numba.njit(inline="always")
def _mix64(x):
    """splitmix64's finaliser: a bijection that spreads every input bit over the output."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@numba.njit(inline="always")
def _add_shingle(h, sig, num_perm):
    """One-permutation hashing: the high 32 bits pick the bin, the low 32 bits compete for its minimum."""
    bin_index = ((h >> np.uint64(32)) * np.uint64(num_perm)) >> np.uint64(32)
    value = h & np.uint64(0xFFFFFFFF)
    if value < sig[bin_index]:
        sig[bin_index] = value


@numba.njit(cache=True, nogil=True)
def _signatures(buf, starts, word_byte, ngram, probes, out, n_shingles):
    """Fill `out` and `n_shingles` for the documents buf[starts[d]:starts[d + 1]].

    Words are hashed with FNV-1a and finalised with `_mix64`; a shingle hash is the polynomial
    sum(word_k * B^(ngram-1-k)) over its words, updated in two multiplications per word as the
    window slides (Rabin-Karp), and mixed again before it picks a bin.
    """
    num_perm = out.shape[1]
    top_power = np.uint64(1)
    for _ in range(ngram - 1):
        top_power *= _SHINGLE_BASE
    sig = np.empty(num_perm, dtype=np.uint64)
    ring = np.zeros(ngram, dtype=np.uint64)
    for d in range(len(starts) - 1):
        sig[:] = _EMPTY
        words = 0
        window = np.uint64(0)
        in_word = False
        h = _FNV_OFFSET
        end = starts[d + 1]
        for i in range(starts[d], end + 1):
            folded = word_byte[buf[i]] if i < end else 0
            is_word = folded != 0
            if is_word:
                h = (h ^ np.uint64(folded)) * _FNV_PRIME
            elif in_word:
                word_hash = _mix64(h)
                h = _FNV_OFFSET
                slot = words % ngram
                if words >= ngram:
                    window -= ring[slot] * top_power
                window = window * _SHINGLE_BASE + word_hash
                ring[slot] = word_hash
                words += 1
                if words >= ngram:
                    _add_shingle(_mix64(window), sig, num_perm)
            in_word = is_word
        shingles = max(words - ngram + 1, 0)
        if 0 < words < ngram:
            _add_shingle(_mix64(window), sig, num_perm)
            shingles = 1
        n_shingles[d] = shingles
        for j in range(num_perm):
            value = sig[j]
            if value == _EMPTY and shingles > 0:
                for k in probes[j]:
                    if sig[k] != _EMPTY:
                        value = sig[k]
                        break
            out[d, j] = np.uint32(value & np.uint64(0xFFFFFFFF)) if value != _EMPTY else np.uint32(0xFFFFFFFF)


def signatures(texts, params: MinHashParams, workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(signatures uint32 [n_docs, num_perm], shingle counts int64 [n_docs]) of `texts`.

    A document without any word has count 0 and an all-0xFFFFFFFF signature; callers leave it out
    of LSH (it has nothing to be similar by). `workers` > 1 splits the documents over that many
    threads (the compiled loop releases the GIL); leave it at 1 inside a one-core workflow job.
    """
    # ASCII letters are lower-cased inside the loop; only other texts need Python's Unicode lower().
    encoded = [(text if text.isascii() else text.lower()).encode("utf-8", "surrogatepass") for text in texts]
    starts = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=starts[1:])
    return utf8_signatures(np.frombuffer(b"".join(encoded), dtype=np.uint8), starts, params, workers)


def utf8_signatures(buf: np.ndarray, starts: np.ndarray, params: MinHashParams,
                    workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """`signatures` of texts given as UTF-8 bytes, text d at buf[starts[d]:starts[d + 1]], every text that is
    not ASCII already lower-cased (the loop lower-cases ASCII letters itself)."""
    n_docs = len(starts) - 1
    out = np.empty((n_docs, params.num_perm), dtype=np.uint32)
    n_shingles = np.empty(n_docs, dtype=np.int64)
    probes = probe_sequences(params.num_perm)
    bounds = np.linspace(0, n_docs, max(1, workers) + 1).astype(int)

    def run(lo: int, hi: int) -> None:
        _signatures(buf, starts[lo:hi + 1], _WORD_BYTE, params.ngram, probes, out[lo:hi], n_shingles[lo:hi])

    if workers <= 1:
        run(0, n_docs)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, bounds[:-1], bounds[1:]))
    return out, n_shingles


def band_keys(sigs: np.ndarray, params: MinHashParams) -> np.ndarray:
    """uint64 [n_docs, bands]: one hash per band of `rows` consecutive signature values."""
    mixers = _band_mixers(params.rows)
    keys = np.empty((len(sigs), params.bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(params.bands):
            block = sigs[:, band * params.rows:(band + 1) * params.rows].astype(np.uint64)
            keys[:, band] = (block * mixers).sum(axis=1, dtype=np.uint64)
    return keys


def estimated_jaccard(sigs_a: np.ndarray, sigs_b: np.ndarray) -> np.ndarray:
    """Share of agreeing signature positions, row by row (the MinHash estimate of Jaccard similarity)."""
    return (sigs_a == sigs_b).mean(axis=-1)


_WORD = re.compile(r"[0-9a-z_\u0080-\U0010ffff]+")


def shingle_set(text: str, ngram: int) -> set[tuple[str, ...]]:
    """The shingles `signatures` hashes, as plain tuples: the reference for measuring its accuracy."""
    words = _WORD.findall(text.lower())
    if not words:
        return set()
    return {tuple(words[i:i + ngram]) for i in range(max(len(words) - ngram + 1, 1))}


def exact_jaccard(text_a: str, text_b: str, ngram: int) -> float:
    """Jaccard similarity of the two texts' shingle sets (1.0 for two texts without words)."""
    a, b = shingle_set(text_a, ngram), shingle_set(text_b, ngram)
    return len(a & b) / len(a | b) if a or b else 1.0
