"""Synthetic documents with a known entropy rate: the ground truth a fitted irreducible loss E should find.

A seeded random Markov chain of order k over an alphabet of A printable ASCII characters: each context
(the previous k characters) has ``branching`` likely successors with Dirichlet(1) weights, mixed with a
uniform floor so the chain is irreducible and aperiodic (a unique stationary distribution exists and
every document is a sample of the same stationary process). Its entropy rate is exact:

    H = sum over contexts c of  pi(c) * H(P(. | c))          nats per character (= per byte: ASCII)

where pi is the stationary distribution over contexts. Each document starts from a context drawn from pi,
so its first k characters carry the stationary block entropy instead; per character this vanishes as
documents grow (doc_chars >> k).
"""

from __future__ import annotations

import string
from collections.abc import Iterator

import numpy as np

from isoflop.errors import UserError

# Printable, no whitespace that a tokenizer or a text file might normalise (newline, tab).
ALPHABET = string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation + " "
DOCS_PER_BLOCK = 256  # documents generated together (vectorised); part of the stream's definition


def check_chain_settings(alphabet_size: int, order: int, branching: int, floor: float) -> None:
    if not 2 <= alphabet_size <= len(ALPHABET):
        raise UserError(f"synthetic.alphabet_size={alphabet_size} must be in 2..{len(ALPHABET)}")
    if order < 1 or alphabet_size**order > 2**20:
        raise UserError(f"synthetic.order={order} must be >= 1 with alphabet_size**order <= 2**20 contexts")
    if not 1 <= branching <= alphabet_size:
        raise UserError(f"synthetic.branching={branching} must be in 1..alphabet_size")
    if not 0.0 < floor < 1.0:
        raise UserError(f"synthetic.floor={floor} must be in (0, 1)")


def markov_transitions(alphabet_size: int, order: int, seed: int, branching: int = 3, floor: float = 0.01) -> np.ndarray:
    """Transition matrix of shape (alphabet_size**order, alphabet_size): row c is P(next | context c), where
    context index c = sum_i x_{t-k+i} * A^(k-1-i) (the oldest character most significant)."""
    check_chain_settings(alphabet_size, order, branching, floor)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    contexts = alphabet_size**order
    sparse = np.zeros((contexts, alphabet_size))
    successors = np.argsort(rng.random((contexts, alphabet_size)), axis=1)[:, :branching]
    np.put_along_axis(sparse, successors, rng.dirichlet(np.ones(branching), size=contexts), axis=1)
    return (1.0 - floor) * sparse + floor / alphabet_size


def stationary_distribution(transitions: np.ndarray, tol: float = 1e-15, max_iter: int = 100_000) -> np.ndarray:
    """pi over contexts with pi = pi P (power iteration; the uniform floor makes it converge geometrically)."""
    contexts, alphabet_size = transitions.shape
    next_context = (np.arange(contexts)[:, None] * alphabet_size + np.arange(alphabet_size)) % contexts
    pi = np.full(contexts, 1.0 / contexts)
    for _ in range(max_iter):
        new = np.bincount(next_context.ravel(), weights=(pi[:, None] * transitions).ravel(), minlength=contexts)
        if np.abs(new - pi).sum() < tol:
            return new
        pi = new
    raise RuntimeError("stationary distribution did not converge")


def markov_entropy_rate(alphabet_size: int, order: int, seed: int, branching: int = 3, floor: float = 0.01) -> float:
    """The exact entropy rate, in nats per character, of the chain ``markov_documents`` samples."""
    transitions = markov_transitions(alphabet_size, order, seed, branching, floor)
    pi = stationary_distribution(transitions)
    row_entropy = -(transitions * np.log(transitions)).sum(axis=1)
    return float(pi @ row_entropy)


def markov_documents(
    n_docs: int, doc_chars: int, alphabet_size: int, order: int, seed: int, branching: int = 3, floor: float = 0.01
) -> Iterator[str]:
    """``n_docs`` documents of ``doc_chars`` characters each from the seeded chain (same arguments, same text)."""
    if n_docs < 0 or doc_chars < order:
        raise UserError(f"synthetic: need n_docs >= 0 and doc_chars >= order, got {n_docs} and {doc_chars}")
    transitions = markov_transitions(alphabet_size, order, seed, branching, floor)
    cumulative = np.cumsum(transitions, axis=1)
    cumulative[:, -1] = 1.0
    pi_cumulative = np.cumsum(stationary_distribution(transitions))
    pi_cumulative[-1] = 1.0
    contexts = transitions.shape[0]
    symbols = np.frombuffer(ALPHABET[:alphabet_size].encode(), dtype=np.uint8)
    for block_start in range(0, n_docs, DOCS_PER_BLOCK):
        block = min(DOCS_PER_BLOCK, n_docs - block_start)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, block_start)))
        context = np.searchsorted(pi_cumulative, rng.random(block), side="right")
        chars = np.empty((block, doc_chars), dtype=np.int64)
        for i in range(order):  # spell out the starting context, oldest character first
            chars[:, i] = context // alphabet_size ** (order - 1 - i) % alphabet_size
        for position in range(order, doc_chars):
            u = rng.random(block)[:, None]
            chars[:, position] = (u >= cumulative[context]).sum(axis=1)
            context = (context * alphabet_size + chars[:, position]) % contexts
        for row in symbols[chars]:
            yield row.tobytes().decode("ascii")


def documents(cfg: dict) -> Iterator:
    """The config's `corpus.synthetic` source: Markov documents with ids `<domain>:<index>`."""
    from isoflop.corpus import RawDocument

    domain = cfg["domain"]
    texts = markov_documents(cfg["documents"], cfg["doc_chars"], cfg["alphabet_size"], cfg["order"], cfg["seed"],
                             cfg["branching"])
    for index, text in enumerate(texts):
        yield RawDocument(f"{domain}:{index:07d}", domain, text, f"synthetic document {index}")


def entropy_rate(cfg: dict) -> float:
    """The true entropy rate, in nats per byte, of the config's `corpus.synthetic` source."""
    return markov_entropy_rate(cfg["alphabet_size"], cfg["order"], cfg["seed"], cfg["branching"])
