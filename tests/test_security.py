"""Security properties of issue 12 that the code itself can show (each well under a second): YAML only
through safe loaders, every torch.load with weights_only=True, no config string handed to a shell, servers
bound to loopback, symlinks out of a source folder not followed, the pinned set installed as pinned.

The end-to-end side (a results folder and a source path full of `$(touch ...)` through Snakemake, nothing
created) is `tests/test_faults_input.py::test_the_study_goes_on_with_every_defect_counted_in_curation_json`;
YTE and Python tags in a config are `tests/test_faults_config.py`."""

import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from isoflop.config import _NoAliasLoader, validate_config
from isoflop.corpus import ingest, read_shards
from isoflop.errors import UserError

CODE = sorted([*REPO.glob("src/**/*.py"), *REPO.glob("scripts/*.py"), *REPO.glob("bench/*.py"),
               *REPO.glob("workflow/**/*.smk"), REPO / "Snakefile"])


def _calls(pattern: str) -> list[tuple[Path, str]]:
    """(file, the call's text up to its closing parenthesis) of every match of `pattern` in the code."""
    found = []
    for path in CODE:
        text = path.read_text()
        for match in re.finditer(pattern, text):
            depth, end = 0, match.end() - 1
            for end in range(match.end() - 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            found.append((path.relative_to(REPO), text[match.start(): end + 1]))
    return found


def test_the_code_is_scanned():
    assert len(CODE) > 60 and REPO / "src" / "isoflop" / "config.py" in CODE


def test_yaml_is_read_only_through_safe_loaders():
    loads = _calls(r"\byaml\.(?:load|load_all|full_load|unsafe_load|unsafe_load_all|full_load_all)\(")
    assert loads == [(Path("src/isoflop/config.py"), "yaml.load(text, Loader=_NoAliasLoader)")]
    assert issubclass(_NoAliasLoader, yaml.SafeLoader)
    assert not [path for path in CODE if re.search(r"\bLoader\s*=\s*yaml\.(?:Full|Unsafe)?Loader\b", path.read_text())]


def test_every_torch_load_is_weights_only():
    loads = _calls(r"\btorch\.load\(")
    assert loads, "no torch.load found: the scan is broken"
    assert [call for call in loads if "weights_only=True" not in call[1]] == []


def test_no_config_string_reaches_a_shell():
    """No rule has a `shell:` or `run:` block (every rule runs a script, its values passed as Python objects),
    and no Python hands a string to a shell."""
    rules = [path for path in CODE if path.suffix == ".smk" or path.name == "Snakefile"]
    assert len(rules) >= 5
    assert [path for path in rules if re.search(r"^\s+(?:shell|run):", path.read_text(), re.M)] == []
    shells = r"shell\s*=\s*True|\bos\.(?:system|popen)\(|subprocess\.(?:getoutput|getstatusoutput)\("
    assert [path for path in CODE if re.search(shells, path.read_text())] == []


@pytest.mark.parametrize("name", ["x$(touch pwned)", "x`touch pwned`", "x;touch pwned", "../x", "x\n"])
def test_a_study_name_cannot_carry_a_command_or_a_path(name):
    with pytest.raises(UserError, match=r"^config key 'study' = .* is not allowed"):
        validate_config({"study": name})


def test_servers_bind_loopback_by_default():
    from isoflop.cli import build_parser
    from isoflop.track import Tracking, ui_command

    command = ui_command(Tracking.of(validate_config({})), 5000)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    args = build_parser().parse_args(["mlflow-ui"])
    assert not hasattr(args, "host")  # no flag to widen it by accident
    assert not [path for path in CODE if "0.0.0.0" in path.read_text()]


def test_a_symlink_out_of_a_source_folder_is_not_followed(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the password is hunter2")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "note.txt").write_text("a note")
    (notes / "steal.txt").symlink_to(secret)
    (notes / "all").symlink_to(tmp_path)
    corpus = validate_config({"corpus": {"stdlib": {"enabled": False},
                                         "sources": [{"path": str(notes), "format": "text", "domain": "x"}]}})
    manifest = ingest(corpus["corpus"], tmp_path / "out", progress=False)
    texts = read_shards(tmp_path / "out" / name for name in manifest["shards"])["text"].tolist()
    assert texts == ["a note"]
    counts = manifest["sources"]["sources[0]:x"]
    assert counts["symlink_outside"] == 2 and counts["examples"]["symlink_outside"] == [str(notes / "all"),
                                                                                          str(notes / "steal.txt")]


def test_the_pinned_set_is_what_is_installed():
    """requirements.txt pins every package exactly, and that is what runs: the set an audit checks (see the
    README's Faults and bad input on pip-audit) is the set installed."""
    pins = [line.split("#")[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    pins = [pin for pin in pins if pin]
    assert len(pins) > 100
    unpinned = [pin for pin in pins if not re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", pin)]
    assert unpinned == []
    drifted = []
    for pin in pins:
        name, version = pin.split("==")
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            drifted.append((pin, installed))
    assert drifted == []
