import numpy as np
import pandas as pd

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
