"""Document embeddings: an offline default (TF-IDF + truncated SVD) and models read from a local path.

Every embedder follows the scikit-learn shape: `fit(texts)` returns the embedder, `transform(texts)`
returns float32 rows of unit length. Fitting on a sample chosen by id hash (`fit_sample`) and
transforming shard by shard gives every document the same vector whatever the sharding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from isoflop.curate.split import id_uniform
from isoflop.errors import UserError

# Identifiers and words of two or more characters: keeps `self`, `parse_args`; drops operators and digits.
TOKEN_PATTERN = r"(?u)\b[^\W\d][\w]+\b"


def fit_sample(ids, max_docs: int, seed: int) -> np.ndarray:
    """Indices (in id order) of at most `max_docs` documents with the lowest hash of (seed, id)."""
    ids = np.asarray(ids, dtype=object)
    chosen = np.argsort(id_uniform(ids, seed), kind="stable")[:max_docs]
    return chosen[np.argsort(ids[chosen], kind="stable")]


def tfidf_vectorizer(max_features: int) -> TfidfVectorizer:
    """The TF-IDF used for the default embedding and for each cluster's top terms."""
    return TfidfVectorizer(token_pattern=TOKEN_PATTERN, lowercase=True, sublinear_tf=True, min_df=2,
                           max_features=max_features, dtype=np.float32)


class TfidfSvdEmbedder:
    """TF-IDF of identifiers and words, reduced to `dim` dimensions by randomized truncated SVD."""

    def __init__(self, dim: int = 64, max_features: int = 20000, max_chars: int = 8000, seed: int = 0):
        self.dim, self.max_features, self.max_chars, self.seed = dim, max_features, max_chars, seed

    def fit(self, texts) -> TfidfSvdEmbedder:
        texts = [t[: self.max_chars] for t in texts]
        self.vectorizer_ = tfidf_vectorizer(self.max_features)
        try:
            tfidf = self.vectorizer_.fit_transform(texts)
        except ValueError:  # too few documents share a term for min_df=2
            self.vectorizer_.set_params(min_df=1)
            tfidf = self.vectorizer_.fit_transform(texts)
        dim = max(1, min(self.dim, tfidf.shape[1] - 1, tfidf.shape[0] - 1))
        self.svd_ = TruncatedSVD(n_components=dim, algorithm="randomized", n_iter=5, random_state=self.seed)
        self.svd_.fit(tfidf)
        return self

    def transform(self, texts) -> np.ndarray:
        tfidf = self.vectorizer_.transform([t[: self.max_chars] for t in texts])
        return normalize(self.svd_.transform(tfidf)).astype(np.float32)


class LocalModelEmbedder:
    """A model2vec or sentence-transformers model loaded from a local folder (never downloaded)."""

    def __init__(self, kind: str, model_path: str | None, max_chars: int = 8000):
        self.kind, self.model_path, self.max_chars = kind, model_path, max_chars

    def fit(self, texts) -> LocalModelEmbedder:
        if not self.model_path or not Path(self.model_path).is_dir():
            raise UserError(f"curate.embed.model_path = {self.model_path!r} must be a local folder holding "
                            f"the {self.kind} model")
        try:
            if self.kind == "model2vec":
                from model2vec import StaticModel

                self.model_ = StaticModel.from_pretrained(self.model_path)
            else:
                from sentence_transformers import SentenceTransformer

                self.model_ = SentenceTransformer(self.model_path, device="cpu", local_files_only=True)
        except ImportError as err:
            package = "model2vec" if self.kind == "model2vec" else "sentence-transformers"
            raise UserError(f"curate.embed.kind = {self.kind} needs the {package} package "
                            f"(pip install {package}): {err}") from None
        return self

    def transform(self, texts) -> np.ndarray:
        vectors = np.asarray(self.model_.encode([t[: self.max_chars] for t in texts]), dtype=np.float32)
        return normalize(vectors).astype(np.float32)


def make_embedder(embed_cfg: dict, seed: int):
    """The (unfitted) embedder the config's `curate.embed` object names."""
    if embed_cfg["kind"] == "tfidf_svd":
        return TfidfSvdEmbedder(embed_cfg["dim"], embed_cfg["max_features"], embed_cfg["max_chars"], seed)
    return LocalModelEmbedder(embed_cfg["kind"], embed_cfg["model_path"], embed_cfg["max_chars"])
