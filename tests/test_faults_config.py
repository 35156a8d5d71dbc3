"""Config abuse is refused before any work, with one line naming the key or file: NaN and infinity, a float
where a count is meant, YAML aliases (the alias bomb), YTE templates, names with a trailing newline,
repeated budgets, a grid past `plan.max_runs`, a study without a corpus.

The unit tests (unmarked, each well under a second) call the validator; the `faults` tests give the same
configs to Snakemake (dry runs) and check what reaches the user's terminal."""

import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from isoflop.config import MAX_CONFIG_VALUES, load_config, read_config_file, validate_config
from isoflop.errors import UserError
from isoflop.plan import make_plan

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
TRACEBACK = "Traceback (most recent call last)"
PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z"

# One nesting level of ten aliases per line: the last line stands for 10^9 numbers.
ALIAS_BOMB = """\
a: &a [1.0e+12, 1.0e+12, 1.0e+12, 1.0e+12, 1.0e+12, 1.0e+12, 1.0e+12, 1.0e+12, 1.0e+12, 1.0e+12]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
plan:
  budgets: [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
"""

# (config, the one line naming the key) for every value the schema alone would let through
REFUSED = [
    ({"train": {"lr": math.nan}}, "config key 'train.lr' = nan is not a finite number"),
    ({"plan": {"budgets": [1e12, math.inf]}}, "config key 'plan.budgets[1]' = inf is not a finite number"),
    ({"curate": {"val_fraction": -math.inf}}, "config key 'curate.val_fraction' = -inf is not a finite number"),
    ({"train": {"batch_size": 8.0}}, "config key 'train.batch_size' = 8.0 has the wrong type; expected integer"),
    ({"plan": {"budgets": [[1.0] * 1000]}},  # a refused value is shown short, not expanded into the message
     "config key 'plan.budgets[0]' = [1.0, 1.0, 1.0, 1.0, ...] has the wrong type; expected number"),
    (yaml.safe_load("plan: {budgets: [2.5e10]}"), "config key 'plan.budgets[0]' = '2.5e10' has the wrong type; "
     "expected number (YAML reads a number like 2.5e10 as text: write 2.5e+10)"),
    ({"study": "evil\n"}, f"config key 'study' = 'evil\\n' is not allowed; allowed values: strings matching {PATTERN}"),
    ({"corpus": {"sources": [{"path": "x", "format": "text", "domain": "web\n"}]}},
     r"config key 'corpus.sources[0].domain' = 'web\n' is not allowed; allowed values: strings matching "
     r"^[A-Za-z0-9_-]+\Z"),
    ({"plan": {"budgets": [1e12, 2e12, 1.0e12]}},
     "config key 'plan.budgets[2]' = 1000000000000.0 repeats 'plan.budgets[0]'; allowed values: distinct entries"),
    ({"corpus": {"stdlib": {"enabled": False}}},
     "config key 'corpus': no source is enabled (corpus.stdlib.enabled and corpus.synthetic.enabled are false "
     "and corpus.sources is empty); the study has no documents"),
    ({"corpus": {"stdlib": {"domains": []}}}, "config key 'corpus.stdlib.domains': [] should be non-empty"),
]


@pytest.mark.parametrize("raw, message", REFUSED)
def test_values_the_schema_let_through_are_refused_naming_the_key(raw, message):
    with pytest.raises(UserError) as err:
        validate_config(raw)
    assert str(err.value) == message


def test_an_alias_bomb_is_refused_in_the_file_and_bounded_in_memory(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    with pytest.raises(UserError) as err:
        read_config_file(bomb)
    assert str(err.value) == f"{bomb}:2: YAML aliases (*name) are not allowed in a study config"
    # What Snakemake hands over: its own loader keeps the aliases as shared lists; the walk stops at the limit.
    shared = yaml.safe_load(ALIAS_BOMB)
    started = time.perf_counter()
    with pytest.raises(UserError) as err:
        validate_config({"plan": shared["plan"]})
    assert time.perf_counter() - started < 1.0
    assert str(err.value) == (f"the config holds more than {MAX_CONFIG_VALUES:,} values (YAML aliases expanding?); "
                              f"a study config holds a few hundred")


def test_a_json_config_is_read_as_snakemake_reads_it(tmp_path):
    config = tmp_path / "study.json"
    config.write_text('{\t"train": {"lr": NaN}}')  # JSON that is not YAML (a tab), with JSON's NaN
    with pytest.raises(UserError) as err:
        load_config(config)
    assert str(err.value) == "config key 'train.lr' = nan is not a finite number"


def test_deep_nesting_is_refused_naming_the_key():
    deep = 1.0
    for _ in range(40):
        deep = [deep]
    with pytest.raises(UserError) as err:
        validate_config({"plan": {"budgets": deep}})
    assert str(err.value) == "config key 'plan.budgets" + "[0]" * 31 + "' nests deeper than 32 levels"


def test_a_grid_past_max_runs_is_refused_with_its_count_before_it_is_built():
    config = validate_config({"plan": {"seeds": 40_000}})  # 5 budgets x 5 sizes x 40,000 seeds = 10^6 runs
    started = time.perf_counter()
    with pytest.raises(UserError) as err:
        make_plan(config, "tokens-id")
    assert time.perf_counter() - started < 0.1  # counted, not built (10^5 built runs took 12 s)
    assert str(err.value) == ("config key 'plan.max_runs' = 5000: the grid would make 1,000,000 training runs "
                              "(5 budgets, 5 of them x 40000 seeds, x 5 sizes x 1 learning rates x 1 batch sizes); "
                              "shrink it or raise plan.max_runs")


@pytest.mark.parametrize("text, message", [
    ("__use_yte__: true\nstudy: ?__import__('pathlib').Path({marker!r}).touch() or 'x'\n",
     "{config} asks for YTE templating (__use_yte__), which isoflop refuses: templates are Python code (see README, "
     "Faults and bad input)"),
    ("study: !!python/object/apply:os.system ['touch {marker}']\n",
     "{config}:1: not valid YAML: could not determine a constructor for the tag "
     "'tag:yaml.org,2002:python/object/apply:os.system'"),
], ids=["yte", "python-tag"])
def test_yte_and_python_tags_are_refused_without_running_anything(tmp_path, text, message):
    marker, config = str(tmp_path / "ran"), tmp_path / "study.yaml"
    config.write_text(text.format(marker=marker))
    with pytest.raises(UserError) as err:
        load_config(config)
    assert str(err.value) == message.format(config=config)
    assert not Path(marker).exists()



def test_isoflop_study_refuses_a_yte_config_before_snakemake_evaluates_it(tmp_path):
    marker, config = tmp_path / "ran", tmp_path / "study.yaml"
    config.write_text(f"__use_yte__: true\nstudy: ?__import__('pathlib').Path({str(marker)!r}).touch() or 'x'\n")
    isoflop = str(Path(sys.executable).parent / "isoflop")
    done = subprocess.run([isoflop, "study", "--config", str(config), "--directory", str(tmp_path / "work")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == (f"isoflop study: error: {config} asks for YTE templating (__use_yte__), which "
                                   "isoflop refuses: templates are Python code (see README, Faults and bad input)")
    assert not marker.exists() and not (tmp_path / "work").exists()

def _dry_run(tmp_path, config_text: str) -> subprocess.CompletedProcess:
    configfile = tmp_path / "study.yaml"
    configfile.write_text(config_text)
    return subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "work"), "--configfile",
                           str(configfile), "--cores", "1", "-n"], capture_output=True, text=True, timeout=300)


DRY_RUNS = [
    ("train: {lr: .nan}\n", "isoflop: config error: config key 'train.lr' = nan is not a finite number"),
    ("plan: {budgets: [.inf]}\n", "isoflop: config error: config key 'plan.budgets[0]' = inf is not a finite number"),
    ("train: {batch_size: 8.0}\n",
     "isoflop: config error: config key 'train.batch_size' = 8.0 has the wrong type; expected integer"),
    ('study: "evil\\n"\n', f"isoflop: config error: config key 'study' = 'evil\\n' is not allowed; allowed values: "
                           f"strings matching {PATTERN}"),
    ("plan: {budgets: [1.0e+12, 1.0e+12]}\n", "isoflop: config error: config key 'plan.budgets[1]' = 1000000000000.0 "
                                              "repeats 'plan.budgets[0]'; allowed values: distinct entries"),
    ("plan: {seeds: 40000}\n", "isoflop: config error: config key 'plan.max_runs' = 5000: the grid would make "
                               "1,000,000 training runs (5 budgets, 5 of them x 40000 seeds, x 5 sizes x 1 learning "
                               "rates x 1 batch sizes); shrink it or raise plan.max_runs"),
    ("corpus: {stdlib: {enabled: false}}\n", "isoflop: config error: config key 'corpus': no source is enabled "
     "(corpus.stdlib.enabled and corpus.synthetic.enabled are false and corpus.sources is empty); the study has "
     "no documents"),
    (ALIAS_BOMB, "isoflop: config error: {configfile}:2: YAML aliases (*name) are not allowed in a study config"),
    # Snakemake's loader (PyYAML's FullLoader) builds this function object without calling it; isoflop refuses it
    ("study: !!python/name:os.system\n", "isoflop: config error: {configfile}:1: not valid YAML: could not determine "
                                        "a constructor for the tag 'tag:yaml.org,2002:python/name:os.system'"),
]


@pytest.mark.faults
@pytest.mark.parametrize("config_text, line", DRY_RUNS, ids=["nan", "inf", "float-count", "newline-name",
                                                              "repeated-budget", "million-runs", "no-corpus",
                                                              "alias-bomb", "python-tag"])
def test_a_dry_run_refuses_config_abuse_in_one_line(tmp_path, config_text, line):
    started = time.perf_counter()
    done = _dry_run(tmp_path, config_text)
    assert done.returncode == 1
    assert line.format(configfile=tmp_path / "study.yaml") in done.stderr.splitlines()
    assert TRACEBACK not in done.stderr + done.stdout
    assert "isoflop" not in done.stderr.replace(line.format(configfile=tmp_path / "study.yaml"), "")  # one line
    assert time.perf_counter() - started < 120  # the million-run grid and the bomb too: no plan is built
    assert not (tmp_path / "work" / "results").exists()


@pytest.mark.faults
def test_snakemake_evaluates_yte_before_isoflop_which_then_refuses_the_study(tmp_path):
    """The limit documented in the README: Snakemake runs a config file's YTE templates while it reads
    --configfile, before any isoflop code; isoflop then refuses the study (nothing is planned or run), and
    `isoflop check-config`, which `make study` runs first, refuses the file without evaluating it."""
    marker = tmp_path / "template-ran"
    text = f"__use_yte__: true\nstudy: ?__import__('pathlib').Path({str(marker)!r}).touch() or 'yte'\n"
    done = _dry_run(tmp_path, text)
    configfile = tmp_path / "study.yaml"
    assert done.returncode == 1 and TRACEBACK not in done.stderr
    assert (f"isoflop: config error: {configfile} asks for YTE templating (__use_yte__), which isoflop refuses: "
            f"templates are Python code (see README, Faults and bad input)") in done.stderr.splitlines()
    assert marker.exists()  # Snakemake's loader ran the template: a config file is code
    marker.unlink()
    checked = subprocess.run([sys.executable, "-m", "isoflop.cli", "check-config", str(configfile)],
                             capture_output=True, text=True)
    assert checked.returncode == 1 and not marker.exists()
    assert checked.stderr == (f"isoflop check-config: error: {configfile} asks for YTE templating (__use_yte__), "
                              f"which isoflop refuses: templates are Python code (see README, Faults and bad "
                              f"input)\n")


def test_check_config_accepts_the_repository_configs_and_refuses_in_one_line(tmp_path, capsys):
    from isoflop.cli import main

    assert main(["check-config", str(REPO / "config.yaml")]) == 0
    assert capsys.readouterr().out == f"{REPO / 'config.yaml'}: valid study config 'default'\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {lr: .nan}\n")
    assert main(["check-config", str(bad)]) == 1
    assert capsys.readouterr().err == "isoflop check-config: error: config key 'train.lr' = nan is not a finite number\n"


@pytest.mark.parametrize("config,key,code", [
    ({"results_dir": "results\n"}, "results_dir", "000A"),
    ({"baseline": "results/a\x1b[2Jb"}, "baseline", "001B"),
    ({"corpus": {"sources": [{"path": "web\tdocs", "format": "jsonl", "domain": "web"}]}}, "corpus.sources[0].path",
     "0009"),
    ({"curate": {"embed": {"model_path": "models/m\x00"}}}, "curate.embed.model_path", "0000"),
    ({"tracking": {"uri": "sqlite:///a\r.db"}}, "tracking.uri", "000D"),
])
def test_a_control_character_in_any_configured_path_is_refused_naming_its_key(config, key, code):
    with pytest.raises(UserError) as refused:
        validate_config(config)
    assert str(refused.value).startswith(f"config key '{key}' = ")
    assert str(refused.value).endswith(f"holds a control character (U+{code}); a path must be plain text")
    assert "\n" not in str(refused.value)


def test_a_path_with_spaces_and_unicode_is_still_a_path():
    assert validate_config({"results_dir": "my results/été"})["results_dir"] == "my results/été"
