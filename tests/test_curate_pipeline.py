import json

import numpy as np
import pandas as pd
import pytest

from isoflop.curate import curate_documents, fill_defaults, split_validation
from isoflop.errors import UserError


def _docs():
    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = ["".join(rng.choice(letters, 6)) for _ in range(500)]
    rows = [{"id": f"p{k:03d}", "domain": "prose" if k % 2 else "notes", "text": " ".join(rng.choice(vocab, 120)),
             "source": "synthetic"} for k in range(40)]
    rows.append({"id": "z-exact", "domain": "prose", "text": rows[1]["text"] + "  \r\n", "source": "copy"})
    rows.append({"id": "a-exact", "domain": "prose", "text": rows[3]["text"], "source": "copy"})
    rows.append({"id": "short", "domain": "notes", "text": "too short", "source": "tiny"})
    return pd.DataFrame(rows)


def test_defaults_are_filled_and_unknown_keys_named():
    cfg = fill_defaults({"near_dup": {"threshold": 0.7}})
    assert cfg["near_dup"]["threshold"] == 0.7 and cfg["near_dup"]["num_perm"] == 128
    assert cfg["quality"]["rules"]["min_words"] == 50 and cfg["val_fraction"] == 0.05
    assert cfg["quality"]["domain_rules"]["tests"]["max_line_length"] == 1000  # inherited from code
    with pytest.raises(UserError, match="thresold"):
        fill_defaults({"near_dup": {"thresold": 0.7}})


def test_stages_remove_what_they_should_and_report_it():
    docs = _docs()
    cfg = {"cluster": {"n_clusters": 3}}
    kept, report = curate_documents(docs, cfg)
    json.dumps(report)
    assert "short" not in set(kept["id"])  # quality: min_words
    assert "z-exact" not in set(kept["id"])  # exact copy of p001 (after normalisation): p001 < z-exact
    assert "a-exact" in set(kept["id"]) and "p003" not in set(kept["id"])  # the smallest id is kept
    assert list(kept.columns[:4]) == ["id", "domain", "text", "source"]
    assert kept["id"].tolist() == [i for i in docs["id"] if i in set(kept["id"])]  # in input order
    assert set(kept["cluster"]) <= {0, 1, 2} and {"map_x", "map_y"} <= set(kept.columns)

    table = pd.DataFrame(report["table"])
    quality = table[table["stage"] == "quality"].set_index("domain")
    assert quality.loc["notes", "docs_in"] == 21 and quality.loc["notes", "docs_out"] == 20
    assert report["stages"]["quality"]["removed_by_rule"]["notes"]["min_words"] == 1
    exact = table[table["stage"] == "exact_dedup"]
    assert exact["docs_in"].sum() - exact["docs_out"].sum() == 2
    last = table[table["stage"] == "semantic_dedup"]
    assert last["docs_out"].sum() == len(kept)
    assert last["bytes_out"].sum() == sum(len(t.encode()) for t in kept["text"])


def test_alarm_when_near_dup_removes_too_much():
    base = _docs().iloc[:4]
    copies = pd.DataFrame([{"id": f"c{k}", "domain": "notes", "text": base["text"].iloc[0] + f" extra{k}",
                            "source": "copy"} for k in range(6)])
    cfg = {"quality": {"enabled": False}, "embed": {"enabled": False}, "near_dup": {"alarm_removal_rate": 0.3}}
    _, report = curate_documents(pd.concat([base, copies], ignore_index=True), cfg)
    assert len(report["alarms"]) == 1 and "'notes'" in report["alarms"][0]


def test_missing_column_and_repeated_ids_are_user_errors():
    with pytest.raises(UserError, match="domain"):
        curate_documents(pd.DataFrame({"id": ["a"], "text": ["x"]}), {})
    with pytest.raises(UserError, match="unique"):
        curate_documents(pd.DataFrame({"id": ["a", "a"], "domain": ["d", "d"], "text": ["x", "y"]}), {})


def test_split_is_stable_stratified_and_seeded():
    docs = pd.DataFrame({"id": [f"d{i}" for i in range(400)], "domain": ["a"] * 398 + ["b"] * 2, "text": "t"})
    train, val = split_validation(docs, 0.1, seed=0)
    assert len(train) + len(val) == 400 and set(val["domain"]) == {"a", "b"}
    assert 25 <= (val["domain"] == "a").sum() <= 55
    more = pd.concat([docs, pd.DataFrame({"id": [f"new{i}" for i in range(100)], "domain": "a", "text": "t"})])
    _, val_more = split_validation(more, 0.1, seed=0)
    assert set(val["id"]) <= set(val_more["id"])  # adding documents moves none of the old ones
    _, val_other_seed = split_validation(docs, 0.1, seed=1)
    assert set(val["id"]) != set(val_other_seed["id"])
    again = split_validation(docs.iloc[::-1], 0.1, seed=0)[1]
    assert set(again["id"]) == set(val["id"])


def test_bands_without_rows_is_a_user_error():
    with pytest.raises(UserError, match="set together"):
        curate_documents(_docs(), {"near_dup": {"bands": 8}})
    with pytest.raises(UserError, match="exceeds num_perm"):
        curate_documents(_docs(), {"near_dup": {"bands": 20, "rows": 8}})
