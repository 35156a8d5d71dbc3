"""The `isoflop` command's conventions: --version, examples in every --help, exit status 1 vs 2."""

from importlib import metadata

import pytest

import isoflop
from isoflop.cli import main, version


def test_version_is_the_package_metadata_else_the_source_version(monkeypatch, capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"isoflop {metadata.version('isoflop')}\n"

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert version() == isoflop.__version__ == "0.1.0"


@pytest.mark.parametrize("command", [[], ["dedup"], ["compare"], ["track-sync"], ["tracking-server"]])
def test_every_help_ends_with_examples(capsys, command):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    examples = capsys.readouterr().out.split("examples:\n")[1]
    assert f"  isoflop {command[0] if command else 'fit'} " in examples


def test_a_usage_error_exits_2_and_a_runtime_failure_1(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["fit", "runs.csv", "--law", "nonsense", "--out", "x.json"])
    assert done.value.code == 2
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err
    missing = tmp_path / "absent.csv"
    assert main(["fit", str(missing), "--law", "chinchilla", "--out", str(tmp_path / "x.json")]) == 1
    assert capsys.readouterr().err == f"isoflop fit: error: {missing}: no such file\n"


def test_a_full_disk_is_one_line_naming_the_file_not_a_traceback(tmp_path, capsys):
    """Writing to /dev/full fails as a full disk does (ENOSPC): the command says so in one line and exits 1."""
    import numpy as np

    n, d = np.meshgrid(np.geomspace(1e6, 1e8, 4), np.geomspace(1e8, 1e10, 4))
    loss = 1.7 + 400 / n**0.34 + 400 / d**0.28
    runs = tmp_path / "runs.csv"
    runs.write_text("N,D,loss\n" + "".join(f"{a},{b},{c}\n" for a, b, c in zip(n.ravel(), d.ravel(), loss.ravel())))
    assert main(["fit", str(runs), "--law", "chinchilla", "--bootstrap", "0", "--no-calibrate",
                 "--out", "/dev/full"]) == 1
    err = capsys.readouterr().err
    assert err == ("isoflop fit: error: no space left on device writing /dev/full: free space there and run the "
                   "command again\n")
