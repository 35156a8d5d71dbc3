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
from pathlib import Path

import numpy as np

from isoflop.errors import UserError

EOS = "<|endoftext|>"
ENCODE_BATCH = 256


def _sample_for_training(texts: list[str], ids: list[str], budget_bytes: int) -> list[str]:
    """Documents ranked by a hash of their id, taken until the byte budget is spent (deterministic)."""
    order = sorted(range(len(ids)), key=lambda i: hashlib.sha1(ids[i].encode()).hexdigest())
    sample, used = [], 0
    for i in order:
        if used >= budget_bytes:
            break
        sample.append(texts[i])
        used += len(texts[i].encode("utf-8"))
    return sample


def train_tokenizer(texts: list[str], ids: list[str], vocab_size: int, train_bytes: int):
    """A byte-level BPE with `vocab_size` entries (256 bytes + EOS + merges) trained on a sample of `texts`."""
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
    tokenizer.train_from_iterator(_sample_for_training(texts, ids, train_bytes), trainer=trainer)
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


def write_groups(tokenizer, train_docs, val_docs, column: str, out_dir: str | Path) -> dict:
    """Encode both splits per value of `column` (the domain, or a mixture group such as a cluster) into
    `out_dir/<value>/{train,val}.bin` and write meta.json, whose `domains` are those values."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = hashlib.sha256()
    domains: dict[str, dict] = {}
    for domain in sorted(set(train_docs[column]) | set(val_docs[column])):
        entry: dict[str, int] = {}
        for split, docs in (("train", train_docs), ("val", val_docs)):
            part = docs[docs[column] == domain].sort_values("id")
            texts = part["text"].tolist()
            ids = encode_documents(tokenizer, texts)
            path = out_dir / domain / f"{split}.bin"
            path.parent.mkdir(exist_ok=True)
            ids.tofile(path)
            fingerprint.update(f"{domain}/{split}:".encode() + ids.tobytes())
            entry[f"{split}_tokens"] = int(ids.size)
            entry[f"{split}_bytes"] = int(sum(len(t.encode("utf-8")) for t in texts))
            entry[f"{split}_documents"] = len(texts)
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
