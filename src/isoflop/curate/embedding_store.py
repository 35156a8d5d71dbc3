"""The fitted embedding state saved as plain arrays and JSON in one `.npz` file: reading it runs no code.

A file under `results/` is input an attacker may have planted, so it is never unpickled: `np.load` with
`allow_pickle=False` reads only numeric and fixed-width string arrays (the JSON is one string array) and
refuses a pickle, or an object array inside the archive, with a ValueError. The scikit-learn objects are
rebuilt from their fitted attributes (vocabulary, idf, components, mean), so `transform` runs the same
computation as on the objects that were fitted and gives bit-identical vectors.

The state (`stage.fit_embedding` builds it) is a dict: `embedder` (a `TfidfSvdEmbedder` or a
`LocalModelEmbedder`, whose model is read again from its local folder), `levels` (cluster centroids per
level, finest first), `map` (a 2-D PCA, or None) and `vectorizer` (the TF-IDF the top terms come from:
the embedder's own when it has one).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from isoflop.errors import UserError

FORMAT = 1  # bumped when the arrays or the JSON change meaning


def _vectorizer_arrays(prefix: str, vectorizer) -> dict:
    terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
    return {f"{prefix}_terms": np.array(terms, dtype=str), f"{prefix}_idf": vectorizer.idf_}


def _vectorizer_from(arrays, prefix: str, meta: dict):
    from isoflop.curate.embed import tfidf_vectorizer

    vectorizer = tfidf_vectorizer(meta["max_features"]).set_params(min_df=meta["min_df"])
    vectorizer.vocabulary_ = {str(term): index for index, term in enumerate(arrays[f"{prefix}_terms"])}
    vectorizer.idf_ = arrays[f"{prefix}_idf"]
    return vectorizer


def save_embedding(model: dict, path) -> None:
    """Write the fitted state `model` (see the module docstring) to `path` (an .npz file)."""
    from isoflop.curate.embed import TfidfSvdEmbedder

    embedder, vectorizer = model["embedder"], model["vectorizer"]
    own_vectorizer = getattr(embedder, "vectorizer_", None)
    arrays = {f"level_{index}": level for index, level in enumerate(model["levels"])}
    meta = {"format": FORMAT, "levels": len(model["levels"]), "map": model["map"] is not None,
            "vectorizer": {"shared": vectorizer is own_vectorizer, "max_features": vectorizer.max_features,
                           "min_df": vectorizer.min_df}}
    if isinstance(embedder, TfidfSvdEmbedder):
        meta["embedder"] = {"kind": "tfidf_svd", "dim": embedder.dim, "max_features": embedder.max_features,
                            "max_chars": embedder.max_chars, "seed": embedder.seed,
                            "min_df": own_vectorizer.min_df}
        arrays.update(_vectorizer_arrays("embedder", own_vectorizer), svd_components=embedder.svd_.components_)
    else:
        meta["embedder"] = {"kind": embedder.kind, "model_path": embedder.model_path,
                            "max_chars": embedder.max_chars}
    if not meta["vectorizer"]["shared"]:
        arrays.update(_vectorizer_arrays("top_terms", vectorizer))
    if model["map"] is not None:
        arrays.update(map_components=model["map"].components_, map_mean=model["map"].mean_,
                      map_explained_variance=model["map"].explained_variance_)
    with open(path, "wb") as out:
        np.savez(out, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)


def load_embedding(path) -> dict:
    """The state `save_embedding` wrote to `path`; a file holding anything but plain arrays is refused."""
    try:
        with np.load(Path(path), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(str(arrays["meta"]))
    except (ValueError, KeyError, OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path} is not an isoflop embedding file (arrays and JSON; pickles are refused): "
                        f"{err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{path} has embedding format {meta.get('format') if isinstance(meta, dict) else None!r}, "
                        f"expected {FORMAT}: delete it and rerun the curation")
    embedder = _embedder_from(arrays, meta["embedder"])
    shared = meta["vectorizer"]["shared"]
    return {"embedder": embedder,
            "levels": [arrays[f"level_{index}"] for index in range(meta["levels"])],
            "map": _map_from(arrays) if meta["map"] else None,
            "vectorizer": embedder.vectorizer_ if shared else _vectorizer_from(arrays, "top_terms", meta["vectorizer"])}


def _embedder_from(arrays, meta: dict):
    from sklearn.decomposition import TruncatedSVD

    from isoflop.curate.embed import LocalModelEmbedder, TfidfSvdEmbedder

    if meta["kind"] != "tfidf_svd":
        return LocalModelEmbedder(meta["kind"], meta["model_path"], meta["max_chars"]).fit([])
    embedder = TfidfSvdEmbedder(meta["dim"], meta["max_features"], meta["max_chars"], meta["seed"])
    embedder.vectorizer_ = _vectorizer_from(arrays, "embedder", meta)
    components = arrays["svd_components"]
    embedder.svd_ = TruncatedSVD(n_components=len(components), algorithm="randomized", random_state=meta["seed"])
    embedder.svd_.components_, embedder.svd_.n_features_in_ = components, components.shape[1]
    return embedder


def _map_from(arrays):
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, svd_solver="full")
    pca.components_, pca.mean_ = arrays["map_components"], arrays["map_mean"]
    pca.explained_variance_ = arrays["map_explained_variance"]
    pca.n_components_, pca.n_features_in_ = len(pca.components_), pca.components_.shape[1]
    return pca

