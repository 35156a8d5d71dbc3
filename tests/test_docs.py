"""The documentation site: it builds in strict mode, its generated config reference lists every schema key with
its default, the README stays short, and the getting-started page's tested commands run as written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "docs"))

import gen_reference  # noqa: E402  (docs/ is not a package; its generator is a plain script)


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "NO_MKDOCS_2_WARNING": "1",
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def _mkdocs(tmp_path: Path, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(tmp_path / "site")],
                          cwd=config.parent, env=_env(), capture_output=True, text=True, timeout=300)


def _copy_site_sources(tmp_path: Path) -> Path:
    """docs/, mkdocs.yml and what they include, so a test can break a copy."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "docs", root / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "mkdocs.yml", root)
    shutil.copy(REPO / "ARCHITECTURE.md", root)
    (root / "src").symlink_to(REPO / "src")
    return root / "mkdocs.yml"


def test_the_site_builds_in_strict_mode_and_a_broken_link_fails_it(tmp_path):
    config = _copy_site_sources(tmp_path)
    # a page the nav does not name joins the user guide (how docs/<topic>.md of another change appears)
    (config.parent / "docs/forecasts.md").write_text("# Forecasts\n\nA page no nav entry names.\n")
    built = _mkdocs(tmp_path, config)
    assert built.returncode == 0, built.stderr[-3000:]
    site = tmp_path / "site"
    for page in ("getting-started", "reference/config", "reference/cli", "reference/api", "architecture"):
        assert (site / page / "index.html").is_file(), page
    api = (site / "reference/api/index.html").read_text()
    assert "study_plan" in api and "StudyLayout" in api  # docstrings rendered, not just headings
    assert "Import layers" in (site / "architecture/index.html").read_text()  # ARCHITECTURE.md included
    assert 'href="forecasts/"' in (site / "index.html").read_text()

    with open(config.parent / "docs/outputs.md", "a") as page:
        page.write("\nSee [the missing page](no-such-page.md).\n")
    built = _mkdocs(tmp_path, config)
    assert built.returncode != 0
    assert "no-such-page.md" in built.stderr


def _flatten(value, nodes: dict, key=""):
    """(dotted key, value) of every schema key in a config; a free-form map (e.g. per-domain rules) is one value."""
    if isinstance(value, dict) and (not key or "properties" in nodes[key]):
        for name, child in value.items():
            yield from _flatten(child, nodes, f"{key}.{name}" if key else name)
    else:
        yield key, value


def test_the_config_reference_lists_every_schema_key_with_its_default():
    from isoflop.config import validate_config

    page = gen_reference.config_reference()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \| [^\n]*? \| (.*?) \| [^\n]*\|$", page, re.M)}
    nodes = dict(gen_reference.schema_keys())
    assert len(nodes) > 150 and set(nodes) <= set(rows)
    for key, default in _flatten(validate_config({}), nodes):
        assert key in rows, key
        assert rows[key] == f"`{json.dumps(default)}`".replace("|", "\\|"), (key, rows[key])
    assert rows["curate.val_fraction"] == "`0.05`"  # a key of curate.schema.yaml, reached through $ref
    assert rows["mix.verify.scales[].d_model"] == "required"
    assert rows["corpus.sources[].text_field"] == '`"text"`'  # an item's own default
    assert rows["mix.verify"] == "see its keys"


# every keyword the schemas use; anything else is a YAML slip, e.g. an unquoted comma in a flow mapping's
# description (`{description: a, b}`) makes a key `b` and cuts the description short
SCHEMA_KEYWORDS = {"type", "default", "description", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                   "multipleOf", "enum", "items", "properties", "additionalProperties", "required", "minItems",
                   "maxItems", "uniqueItems", "pattern", "oneOf", "$ref", "$schema", "title"}


def test_every_schema_key_is_made_of_json_schema_keywords():
    slips = {key: sorted(set(node) - SCHEMA_KEYWORDS) for key, node in gen_reference.schema_keys()
             if set(node) - SCHEMA_KEYWORDS}
    assert slips == {}


def test_the_cli_reference_holds_every_subcommands_help():
    page = gen_reference.cli_reference()
    for command in ("isoflop study", "isoflop check-config", "isoflop fit", "isoflop mix fit",
                    "isoflop tracking-server"):
        assert f"`{command}`" in page, command
    assert "--dry-run" in page  # the study command's epilog


def test_the_readme_is_short_and_links_only_to_files_that_exist():
    readme = (REPO / "README.md").read_text()
    assert len(readme.encode()) <= 12 * 1024
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert targets
    for target in targets:
        assert (REPO / target).exists(), target


def _blocks(page: str) -> list[tuple[str, str]]:
    """(marker, bash text) of every bash block, each preceded by its `docs-test` marker."""
    found = re.findall(r"(?:<!-- docs-test: (\w+)[^>]*-->\n)?```bash\n(.*?)```", page, re.S)
    return [(marker, text) for marker, text in found]


def test_the_getting_started_commands_run_as_written(tmp_path):
    blocks = _blocks((REPO / "docs/getting-started.md").read_text())
    assert all(marker in ("tested", "shown") for marker, _ in blocks), "every bash block is marked tested or shown"
    tested = [text for marker, text in blocks if marker == "tested"]
    assert len(tested) >= 3
    # a scratch checkout: the workflow, its profile and the default study, with the shared .venv
    for name in ("Snakefile", "workflow", "scripts", "envs", "config.yaml"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    (tmp_path / ".venv").symlink_to(BIN.parent)
    script = "set -euo pipefail\n" + "\n".join(tested)
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "usage: isoflop [-h]" in done.stdout
    assert "my-study.yaml: valid study config 'my-study'" in done.stdout
    # the dry run planned the tutorial's grid: 3 budgets x 3 sizes, each a train job
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", done.stdout, re.M))
    assert int(counts["train"]) + int(counts.get("train_trunk", 0)) >= 9, done.stdout[-2000:]
    assert not (tmp_path / "results").exists()  # a dry run writes no result
