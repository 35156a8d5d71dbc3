"""The fitted embedding is saved as arrays and JSON: a round trip gives the same vectors, a pickle is refused."""

import pickle

import numpy as np
import pytest
from sklearn.decomposition import PCA

from isoflop.curate.embed import TfidfSvdEmbedder, tfidf_vectorizer
from isoflop.curate.embedding_store import load_embedding, save_embedding
from isoflop.errors import UserError


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = [f"w{k}" for k in range(300)] + ["parse_args", "self", "déjà"]
    return [" ".join(rng.choice(vocab, 80)) for _ in range(n)]


def _fitted_state(separate_vectorizer: bool) -> dict:
    texts = _texts(60, 0)
    embedder = TfidfSvdEmbedder(dim=8, max_features=200, max_chars=400, seed=3).fit(texts)
    points = embedder.transform(texts)
    vectorizer = tfidf_vectorizer(150).fit(texts) if separate_vectorizer else embedder.vectorizer_
    return {"embedder": embedder, "levels": [points[:5].copy(), points[:2].copy()],
            "map": PCA(n_components=2, svd_solver="full").fit(points), "vectorizer": vectorizer}


@pytest.mark.parametrize("separate_vectorizer", [False, True])
def test_round_trip_gives_bit_identical_vectors_map_and_terms(tmp_path, separate_vectorizer):
    state = _fitted_state(separate_vectorizer)
    save_embedding(state, tmp_path / "embedding.npz")
    loaded = load_embedding(tmp_path / "embedding.npz")
    unseen = _texts(25, 1)
    vectors = state["embedder"].transform(unseen)
    assert np.array_equal(loaded["embedder"].transform(unseen), vectors)
    assert np.array_equal(loaded["map"].transform(vectors), state["map"].transform(vectors))
    assert all(np.array_equal(a, b) for a, b in zip(loaded["levels"], state["levels"]))
    assert len(loaded["levels"]) == 2
    terms = state["vectorizer"].get_feature_names_out()
    assert list(loaded["vectorizer"].get_feature_names_out()) == list(terms) and "déjà" in terms
    assert (loaded["vectorizer"].transform(unseen) != state["vectorizer"].transform(unseen)).nnz == 0
    assert (loaded["vectorizer"] is loaded["embedder"].vectorizer_) == (not separate_vectorizer)


class _Payload:
    """Unpickling this calls `touch` on the marker path: the attack the store must not run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_planted_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    raw = tmp_path / "raw.npz"
    raw.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(UserError, match="raw.npz is not an isoflop embedding file"):
        load_embedding(raw)
    # an object array inside a real archive, named like the store's own entry
    archive = tmp_path / "archive.npz"
    np.savez(archive, meta=np.array([_Payload(marker)], dtype=object))
    with pytest.raises(UserError, match="pickles are refused"):
        load_embedding(archive)
    assert not marker.exists()
    # the same payload does run through pickle, so the test would see an attack that got through
    pickle.loads(raw.read_bytes())
    assert marker.exists()
