import numpy as np
import pandas as pd
import pytest

from isoflop.tokens import build_tokens, load_split, read_meta


def _docs(n, domain, offset=0):
    words = ["alpha", "beta", "gamma", "delta", "def", "return", "self", "import", "class", "print"]
    texts = [" ".join(words[(i * 7 + j) % len(words)] for j in range(40 + i)) + f"\n# {i}" for i in range(n)]
    return pd.DataFrame({"id": [f"{domain}:{i + offset}" for i in range(n)], "domain": domain, "text": texts})


def test_token_folder_format_roundtrip_and_determinism(tmp_path):
    train = pd.concat([_docs(30, "code"), _docs(20, "docs")], ignore_index=True)
    val = pd.concat([_docs(3, "code", 100), _docs(2, "docs", 100)], ignore_index=True)
    cfg = {"vocab_size": 300, "train_bytes": 100_000}
    meta = build_tokens(train, val, cfg, tmp_path / "a")
    again = build_tokens(train, val, cfg, tmp_path / "b")
    assert meta["fingerprint"] == again["fingerprint"]
    assert meta == read_meta(tmp_path / "a")
    assert meta["vocab_size"] == 300 and meta["dtype"] == "uint16"
    code = load_split(tmp_path / "a", "code", "val")
    assert code.dtype == np.uint16 and code.size == meta["domains"]["code"]["val_tokens"]
    # each document ends with EOS, and decoding the ids gives the text back
    eos = meta["eos_id"]
    assert int((code == eos).sum()) == 3 and code[-1] == eos
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tmp_path / "a" / "tokenizer.json"))
    first = code[: int(np.argmax(code == eos))].tolist()
    assert tok.decode(first) == val.sort_values("id")[val.domain == "code"]["text"].iloc[0]
    assert meta["domains"]["docs"]["val_bytes"] == sum(len(t.encode()) for t in val[val.domain == "docs"].text)
    assert meta["domains"]["code"]["train_tokens"] < meta["domains"]["code"]["train_bytes"]  # merges compress


def standard_tokenizer_file(path, texts, vocab_size=120):
    """A tokenizer.json made elsewhere (here with the tokenizers library, as GPT-NeoX's was): a whitespace
    pre-tokenized BPE with byte fallback, not isoflop's byte-level BPE."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<|endoftext|>"],
                                  show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.save(str(path))
    return tokenizer.get_vocab_size()


def test_a_given_tokenizer_file_sets_the_vocabulary_the_token_id_and_trains_with_bits_per_byte(tmp_path):
    import math

    from isoflop.config import validate_config
    from isoflop.plan import model_config, stage_ids
    from isoflop.stages import tokenize_stage
    from isoflop.train.loop import train_run

    train = pd.concat([_docs(60, "code"), _docs(40, "docs")], ignore_index=True)
    val = pd.concat([_docs(6, "code", 100), _docs(4, "docs", 100)], ignore_index=True)
    file = tmp_path / "tokenizer.json"
    vocab = standard_tokenizer_file(file, [f"{w} beta" for w in ("alpha", "gamma", "def", "return")] * 50)
    config = validate_config({"tokenizer": {"path": str(file)}})
    assert model_config(config, 32).vocab_size == vocab != config["tokenizer"]["vocab_size"]
    ids = stage_ids(config, {})
    assert ids["tokens"] != stage_ids(validate_config({}), {})["tokens"]
    moved = tmp_path / "elsewhere.json"
    moved.write_bytes(file.read_bytes())
    assert stage_ids(validate_config({"tokenizer": {"path": str(moved)}}), {})["tokens"] == ids["tokens"]

    curated = tmp_path / "curated"
    curated.mkdir()
    train.to_parquet(curated / "train.parquet")
    val.to_parquet(curated / "val.parquet")
    meta = tokenize_stage(curated, tmp_path / "tokens", config["tokenizer"])
    assert meta["vocab_size"] == vocab and (tmp_path / "tokens" / "tokenizer.json").read_bytes() != b""
    for domain in ("code", "docs"):
        assert meta["domains"][domain]["val_bytes"] == sum(len(t.encode()) for t in val[val.domain == domain].text)

    spec = {"model": {"d_model": 32, "n_layers": 1, "n_heads": 2, "vocab_size": vocab, "seq_len": 16},
            "mixture": {"code": 1.0, "docs": 1.0},
            "train": {"tokens": 40 * 8 * 16, "batch_size": 8, "lr": 1e-2, "warmup_steps": 4, "seed": 0,
                      "eval_tokens": 4096}}
    result = train_run(spec, tmp_path / "tokens", tmp_path / "run", progress=False)
    # bits per byte: the evaluated tokens' nats over the bytes they encode, per domain and overall
    evaluated = {d: (meta["domains"][d]["val_tokens"] - 1) // 16 * 16 for d in ("code", "docs")}
    per_byte = {d: meta["domains"][d]["val_tokens"] / meta["domains"][d]["val_bytes"] for d in evaluated}
    for domain, loss in result["val_loss_by_domain"].items():
        assert result["val_bpb_by_domain"][domain] == pytest.approx(loss * per_byte[domain] / math.log(2), rel=1e-12)
    nats = sum(result["val_loss_by_domain"][d] * evaluated[d] for d in evaluated)
    total_bytes = sum(evaluated[d] / per_byte[d] for d in evaluated)
    assert result["val_bpb"] == pytest.approx(nats / total_bytes / math.log(2), rel=1e-12)
    assert result["val_bpb"] < math.log2(vocab) * sum(per_byte.values()) / 2  # learned something


@pytest.mark.parametrize("content, fragment", [
    (None, "file not found"),
    (b"{not json", "not a tokenizers tokenizer.json"),
])
def test_a_bad_tokenizer_file_is_one_line_naming_the_key(tmp_path, content, fragment):
    from isoflop.config import validate_config
    from isoflop.errors import UserError
    from isoflop.plan import model_config

    file = tmp_path / "tokenizer.json"
    if content is not None:
        file.write_bytes(content)
    with pytest.raises(UserError, match=f"tokenizer.path=.*{fragment}"):
        model_config(validate_config({"tokenizer": {"path": str(file)}}), 32)


def test_a_tokenizer_file_without_the_end_of_document_token_is_refused(tmp_path):
    from tokenizers import Tokenizer, models

    from isoflop.errors import UserError
    from isoflop.tokens import load_tokenizer

    Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>")).save(str(tmp_path / "t.json"))
    with pytest.raises(UserError, match=r"has no <\|endoftext\|> token"):
        load_tokenizer(tmp_path / "t.json")


def test_tokenizing_the_curated_files_row_group_by_row_group_equals_tokenizing_them_whole(tmp_path):
    from isoflop.tokens import tokenize_curated

    train = pd.concat([_docs(50, "code"), _docs(30, "docs"), _docs(5, "tests")], ignore_index=True)
    val = pd.concat([_docs(4, "code", 100), _docs(3, "docs", 100)], ignore_index=True)  # no val doc of tests
    curated = tmp_path / "curated"
    curated.mkdir()
    for name, docs in (("train", train), ("val", val)):  # id-sorted, as the curation stage writes them
        docs.sort_values("id").to_parquet(curated / f"{name}.parquet", row_group_size=7, index=False)
    cfg = {"vocab_size": 300, "train_bytes": 20_000}  # a sample: which documents train the BPE matters
    whole = build_tokens(train, val, cfg, tmp_path / "whole")
    streamed = tokenize_curated(curated, cfg, tmp_path / "streamed")
    assert streamed == whole and streamed["domains"]["tests"]["val_tokens"] == 0
    for domain in ("code", "docs", "tests"):
        for split in ("train", "val"):
            name = f"{domain}/{split}.bin"
            assert (tmp_path / "streamed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
