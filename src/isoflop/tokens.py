"""Tokenizer training, encoding, and the on-disk token format every training run reads.

Format of a tokens folder (read by `isoflop.train`):

    meta.json          {"vocab_size", "eos_id", "dtype": "uint16", "domains": {name: {"train_tokens",
                        "val_tokens", "train_bytes", "val_bytes", "train_documents", "val_documents"}},
                        "fingerprint": sha256 over every .bin}
    tokenizer.json     the tokenizer (HF tokenizers): the byte-level BPE trained here, or a copy of the file
                       `tokenizer.path` names (a standard one such as GPT-NeoX's; it needs the EOS token)
    <domain>/train.bin, <domain>/val.bin   flat uint16 ids, each document followed by eos_id

Without `tokenizer.path`, a BPE is trained on the training split only (validation text never shapes the vocabulary), from a
deterministic sample of at most `train_bytes` bytes, single-threaded so the merges are reproducible.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from isoflop.errors import UserError

EOS = "<|endoftext|>"
ENCODE_BATCH = 256
FINGERPRINT_BLOCK = 16 * 2**20  # bytes of a token file hashed at a time


def _sampled_ids(id_sizes: Iterable[tuple[str, int]], budget_bytes: int) -> list[str]:
    """The training sample: document ids (with their sizes in bytes) ranked by a hash of the id, taken until
    the byte budget is spent (deterministic, and the same however the documents are read)."""
    ranked = sorted((hashlib.sha1(doc_id.encode()).hexdigest(), doc_id, size) for doc_id, size in id_sizes)
    chosen, used = [], 0
    for _, doc_id, size in ranked:
        if used >= budget_bytes:
            break
        chosen.append(doc_id)
        used += size
    return chosen


def train_tokenizer(texts: list[str], ids: list[str], vocab_size: int, train_bytes: int):
    """A byte-level BPE with `vocab_size` entries (256 bytes + EOS + merges) trained on a sample of `texts`."""
    text_of = dict(zip(ids, texts))
    chosen = _sampled_ids(((doc_id, len(text.encode("utf-8"))) for doc_id, text in text_of.items()), train_bytes)
    return _train_bpe([text_of[doc_id] for doc_id in chosen], vocab_size)


def _train_bpe(sample: list[str], vocab_size: int):
    os.environ.setdefault("RAYON_NUM_THREADS", "1")  # multi-threaded merge counting can reorder ties
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(sample, trainer=trainer)
    return tokenizer


def encode_documents(tokenizer, texts: list[str]) -> np.ndarray:
    """All documents' ids concatenated as uint16, each document followed by the EOS id."""
    eos = tokenizer.token_to_id(EOS)
    chunks = []
    for start in range(0, len(texts), ENCODE_BATCH):
        for encoding in tokenizer.encode_batch(texts[start : start + ENCODE_BATCH], add_special_tokens=False):
            chunks.append(np.asarray(encoding.ids, dtype=np.uint16))
            chunks.append(np.asarray([eos], dtype=np.uint16))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint16)


def load_tokenizer(path: str | Path):
    """A `tokenizer.json` (HF tokenizers) for `tokenizer.path`, checked: it must have the end-of-document
    token and ids that fit the uint16 token files."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except FileNotFoundError:
        raise UserError(f"tokenizer.path={str(path)!r}: file not found") from None
    except Exception as err:  # noqa: BLE001  (tokenizers raises a bare Exception for a file it cannot parse)
        raise UserError(f"tokenizer.path={str(path)!r}: not a tokenizers tokenizer.json ({err})") from None
    if tokenizer.token_to_id(EOS) is None:
        raise UserError(f"tokenizer.path={str(path)!r}: has no {EOS} token, which ends every document")
    if tokenizer.get_vocab_size() > 65535:
        raise UserError(f"tokenizer.path={str(path)!r}: {tokenizer.get_vocab_size()} ids do not fit the uint16 "
                        "token files (at most 65535)")
    return tokenizer


def tokenizer_settings(cfg: dict) -> dict:
    """What determines a token folder, for its content id: the config's `tokenizer:` slice, with a named
    file's content hash (so that editing the file makes new tokens, and moving it does not) and, since a
    given file decides the vocabulary, without the unused BPE settings."""
    if not cfg.get("path"):
        return {key: value for key, value in cfg.items() if key != "path"}
    try:
        digest = hashlib.sha256(Path(cfg["path"]).read_bytes()).hexdigest()
    except FileNotFoundError:
        raise UserError(f"tokenizer.path={cfg['path']!r}: file not found") from None
    return {"file_sha256": digest}


def vocab_size(cfg: dict) -> int:
    """The vocabulary size of the config's `tokenizer:`: the file's (`path`), else `vocab_size`."""
    if not cfg.get("path"):
        return cfg["vocab_size"]
    try:
        stat = os.stat(cfg["path"])
    except FileNotFoundError:
        raise UserError(f"tokenizer.path={cfg['path']!r}: file not found") from None
    return _file_vocab_size(str(cfg["path"]), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _file_vocab_size(path: str, mtime_ns: int, size: int) -> int:
    """Parsed once per version of the file: the planner asks for every model size of the grid."""
    return load_tokenizer(path).get_vocab_size()


def build_tokens(train_docs, val_docs, cfg: dict, out_dir: str | Path) -> dict:
    """Train the BPE on `train_docs` (or load the file `cfg["path"]` names), encode both splits per domain into
    `out_dir`; return meta.json's content.

    `train_docs`, `val_docs`: DataFrames with columns id, domain, text. `cfg`: the config's `tokenizer:`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("path"):
        tokenizer = load_tokenizer(cfg["path"])
    else:
        tokenizer = train_tokenizer(
            train_docs["text"].tolist(), train_docs["id"].tolist(), cfg["vocab_size"], cfg["train_bytes"]
        )
    tokenizer.save(str(out_dir / "tokenizer.json"))
    return write_groups(tokenizer, train_docs, val_docs, "domain", out_dir)


def tokenize_curated(curated_dir: str | Path, cfg: dict, out_dir: str | Path) -> dict:
    """`build_tokens` streamed from the curation stage's train/val.parquet, one row group at a time (at most
    `curate.row_group_mib` of text each): memory follows the row group, not the corpus. What grows with the
    corpus is small per document: the ids and sizes that rank the BPE's training sample. The files are sorted
    by id, so the token files are byte-identical to `build_tokens` on the same documents."""
    curated_dir, out_dir = Path(curated_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_path, val_path = curated_dir / "train.parquet", curated_dir / "val.parquet"
    if cfg.get("path"):
        tokenizer = load_tokenizer(cfg["path"])
    else:
        chosen = _sampled_ids(((doc_id, len(text.encode("utf-8"))) for part in _row_groups(train_path, ["id", "text"])
                               for doc_id, text in zip(part["id"], part["text"])), cfg["train_bytes"])
        wanted, text_of = set(chosen), {}
        for part in _row_groups(train_path, ["id", "text"]):
            text_of.update((doc_id, text) for doc_id, text in zip(part["id"], part["text"]) if doc_id in wanted)
        tokenizer = _train_bpe([text_of[doc_id] for doc_id in chosen], cfg["vocab_size"])
        del text_of
    tokenizer.save(str(out_dir / "tokenizer.json"))
    columns = ["id", "domain", "text"]
    return _write_group_parts(tokenizer, {"train": _row_groups(train_path, columns),
                                          "val": _row_groups(val_path, columns)}, "domain", out_dir)


def _row_groups(path: Path, columns: list[str]):
    """A Parquet file's row groups as DataFrames, in file order."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    for index in range(parquet.num_row_groups):
        yield parquet.read_row_group(index, columns=columns).to_pandas()


def write_groups(tokenizer, train_docs, val_docs, column: str, out_dir: str | Path) -> dict:
    """Encode both splits per value of `column` (the domain, or a mixture group such as a cluster) into
    `out_dir/<value>/{train,val}.bin` and write meta.json, whose `domains` are those values."""
    return _write_group_parts(tokenizer, {"train": [train_docs.sort_values("id")],
                                          "val": [val_docs.sort_values("id")]}, column, out_dir)


def _write_group_parts(tokenizer, splits: dict, column: str, out_dir: str | Path) -> dict:
    """Encode each split's parts (DataFrames of id, `column`, text, in id order across parts) group by group,
    appending to each group's token file; then meta.json with the fingerprint read back from the files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, dict[str, int]] = {}
    files = {}
    try:
        for split, parts in splits.items():
            last_id = None
            for part in parts:
                if len(part) and last_id is not None and part["id"].iloc[0] < last_id:
                    raise UserError(f"{split}: documents are not sorted by id, so their tokens would be in another "
                                    "order than the curation stage writes them")
                last_id = part["id"].iloc[-1] if len(part) else last_id
                for group, docs in part.groupby(column, sort=True):
                    texts = docs["text"].tolist()
                    if (group, split) not in files:
                        (out_dir / group).mkdir(exist_ok=True)
                        files[group, split] = open(out_dir / group / f"{split}.bin", "wb")  # noqa: SIM115
                    encode_documents(tokenizer, texts).tofile(files[group, split])
                    entry = counts.setdefault(group, {})
                    entry[f"{split}_bytes"] = entry.get(f"{split}_bytes", 0) + sum(len(t.encode("utf-8")) for t in texts)
                    entry[f"{split}_documents"] = entry.get(f"{split}_documents", 0) + len(texts)
    finally:
        for handle in files.values():
            handle.close()
    fingerprint = hashlib.sha256()
    domains: dict[str, dict] = {}
    for domain in sorted(counts):
        entry = {}
        for split in ("train", "val"):
            path = out_dir / domain / f"{split}.bin"
            path.touch()  # a group with no document in this split has an empty file
            fingerprint.update(f"{domain}/{split}:".encode())
            with open(path, "rb") as handle:
                while block := handle.read(FINGERPRINT_BLOCK):
                    fingerprint.update(block)
            entry[f"{split}_tokens"] = path.stat().st_size // np.dtype(np.uint16).itemsize
            entry[f"{split}_bytes"] = counts[domain].get(f"{split}_bytes", 0)
            entry[f"{split}_documents"] = counts[domain].get(f"{split}_documents", 0)
        domains[domain] = entry
    meta = {
        "vocab_size": tokenizer.get_vocab_size(),
        "eos_id": tokenizer.token_to_id(EOS),
        "dtype": "uint16",
        "domains": domains,
        "fingerprint": fingerprint.hexdigest(),
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def read_meta(tokens_dir: str | Path) -> dict:
    """meta.json of a token folder, checked for the fields training needs."""
    path = Path(tokens_dir) / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found (is {tokens_dir} a tokenized corpus?)") from None
    for key in ("vocab_size", "domains"):
        if key not in meta:
            raise UserError(f"{path}: missing key {key!r}")
    if meta.get("dtype", "uint16") != "uint16":
        raise UserError(f"{path}: dtype {meta['dtype']!r} is not supported, only uint16")
    return meta


def load_split(tokens_dir: str | Path, domain: str, split: str) -> np.memmap:
    """The flat uint16 token array of one domain's split, memory-mapped (no copy)."""
    return np.memmap(Path(tokens_dir) / domain / f"{split}.bin", dtype=np.uint16, mode="r")
