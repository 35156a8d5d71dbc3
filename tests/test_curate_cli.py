import pandas as pd

from isoflop.cli import main
from isoflop.curate.figures import plot_cluster_map, plot_s_curve


def test_dedup_cli_writes_rows_plus_cluster_and_keep(tmp_path, capsys):
    base = " ".join(f"token{i}" for i in range(200))
    docs = pd.DataFrame({
        "doc": ["b", "a", "c", "d", "e"],
        "body": [base, base + " tail words here", "unrelated " * 30, base.replace("token5 ", ""), "x\r\ny"],
        "meta": [1, 2, 3, 4, 5],
    })
    docs.loc[4, "body"] = "x\ny"
    docs = pd.concat([docs, pd.DataFrame({"doc": ["f"], "body": ["x\r\ny  "], "meta": [6]})], ignore_index=True)
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    docs.to_parquet(src)
    code = main(["dedup", str(src), "--text-col", "body", "--id-col", "doc", "--threshold", "0.8", "--out", str(out)])
    assert code == 0
    result = pd.read_parquet(out)
    assert list(result.columns) == ["doc", "body", "meta", "dup_cluster", "keep"]
    assert result.set_index("doc")["dup_cluster"].to_dict() == {"a": "a", "b": "a", "c": "c", "d": "a", "e": "e",
                                                                "f": "e"}
    assert result["keep"].tolist() == [False, True, True, False, True, False]
    assert "3 duplicates removed" in capsys.readouterr().err


def test_dedup_cli_names_a_missing_column(tmp_path, capsys):
    src = tmp_path / "in.parquet"
    pd.DataFrame({"id": ["a"], "content": ["x"]}).to_parquet(src)
    assert main(["dedup", str(src), "--out", str(tmp_path / "o.parquet")]) == 1
    assert "no column 'text'" in capsys.readouterr().err


def test_figures_are_written(tmp_path):
    xy = [[0, 0], [1, 1], [0.1, 0], [1, 0.9]]
    path = plot_cluster_map(xy, [0, 1, 0, 1], tmp_path / "map.png", labels={0: "alpha", 1: "beta"})
    assert path.stat().st_size > 10_000
    assert plot_s_curve(9, 13, 0.8, tmp_path / "s.png").stat().st_size > 5_000
