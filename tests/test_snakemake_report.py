"""`snakemake --report` on the smoke study: every figure and table, each with its own caption, by stage."""

import json
import re
import zipfile

import pytest

from conftest import REPO
from test_study_e2e import snakemake

CAPTIONS = REPO / "workflow" / "report" / "figures"
TABLES = {"runs.parquet": "5. Training", "laws.json": "2. Laws", "curation.json": "6. Curation"}

pytestmark = pytest.mark.slow  # a whole smoke study (about 90 s on 2 cores) before the report


def _report_data(path):
    """The report's `results` and `categories` objects (Snakemake embeds both as JSON in its page)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            html = archive.read(next(name for name in archive.namelist() if name.endswith("report.html"))).decode()
    else:
        html = path.read_text()
    found = {name: json.loads(re.search(rf"var {name} = (\{{.*?\}});\s*</script>", html, re.S).group(1))
             for name in ("results", "categories")}
    return found["results"], found["categories"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smoke-report")
    for args in ((), ("--report", str(workdir / "report.html"))):
        done = snakemake(workdir, *args)
        assert done.returncode == 0, done.stderr[-4000:]
    return workdir, *_report_data(workdir / "report.html")


def test_every_figure_is_in_the_report_with_its_own_caption(report):
    workdir, results, categories = report
    drawn = sorted(path.stem for path in (workdir / "results" / "smoke" / "figures").glob("*.png"))
    figures = {entry["name"].removesuffix(".png"): entry for entry in results.values() if entry["name"].endswith(".png")}
    assert sorted(figures) == drawn and len(drawn) >= 7  # curation 2, loss curves, the laws' figures
    for name, entry in figures.items():
        caption = (CAPTIONS / f"{name}.rst").read_text()
        assert " ".join(caption.split()[:6]) in " ".join(entry["caption"].split()), name
    place = {path.rsplit("/", 1)[-1]: (category, subcategory) for category, sub in categories.items()
             for subcategory, paths in sub.items() for path in paths}
    assert place["curation_clusters.png"][0] == place["curation_s_curve.png"][0] == "6. Curation"
    assert place["loss_curves.png"][0] == "5. Training"
    # the report's order: the allocation's figures before the fits, the diagnostics after the laws
    assert place["frontier.png"] == place["tokens_per_param.png"] == ("2. Laws", "1. allocation")
    assert place["fitted_vs_observed.png"] == ("2. Laws", "2. fits")
    assert place["backtest.png"][0] == "3. Diagnostics"
    assert place["report.md"] == ("1. Summary", "report.md")
    # the captions reach each figure, not every file's parameters: the report job's params list them in one line
    [report_md] = [entry for entry in results.values() if entry["name"] == "report.md"]
    assert report_md["caption"].startswith("<p>report.md: the study's written report")
    params = figures["frontier"]["job_properties"]["params"]
    assert f"captions={len(list(CAPTIONS.glob('*.rst')))} figure captions," in params
    assert not any(" ".join(path.read_text().split()[:6]) in params for path in CAPTIONS.glob("*.rst"))


def test_the_tables_are_in_the_report_with_captions(report):
    _, results, categories = report
    entries = {entry["name"]: entry for entry in results.values()}
    for table, category in TABLES.items():
        assert entries[table]["caption"].startswith(f"<p>{table}:"), table
        assert any(path.endswith(table) for paths in categories[category].values() for path in paths)
    assert set(categories) == {"1. Summary", "2. Laws", "3. Diagnostics", "5. Training", "6. Curation"}
