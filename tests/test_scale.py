"""Curation at scale (marker `scale`): a generated corpus with planted duplicates through the real workflow
on 2 cores, at two sizes with the same shard size. Every curation job stays under 2 GB of peak RSS
(Snakemake's benchmark files), no job's peak grows with the corpus, and the planted exact and near
duplicates are found with precision and recall >= 0.95. The 2 GB run is `bench/bench_curate_scale.py`
(see the README: it does not fit CI)."""

import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
from bench_curate_scale import RSS_LIMIT_MB, run  # noqa: E402

SHARD_MB = 4  # small shards, so the two sizes differ in shard count as a large corpus would
SIZES_MB = (12, 36)
# The two caps that bound the gathers' memory, set below the smaller corpus as the defaults (64 MiB of text
# per row group, an embedding sample of 20,000 documents) lie below a large one.
CAPS = {"row_group_mib": 2, "embed": {"fit_docs": 1000}}


def _job_kind(job: str) -> str:
    return job.rsplit("-", 1)[0] if job.rsplit("-", 1)[-1].isdigit() else job


@pytest.mark.scale
def test_curation_memory_is_bounded_and_planted_duplicates_are_found(tmp_path):
    small, large = (run(size, tmp_path / f"mb{size}", shard_mb=SHARD_MB, curate_cfg=CAPS) for size in SIZES_MB)
    assert large["shards"] >= 2.5 * small["shards"] and large["documents"] >= 2.5 * small["documents"]
    peaks = []
    for result in (small, large):
        curation = [job for job in result["jobs"] if job["job"].startswith("curate/")]
        assert len(curation) == 2 * result["shards"] + 4  # scan and embed per shard; dedup, fit, clusters, curate
        assert all(job["max_rss_mb"] < RSS_LIMIT_MB for job in curation), curation
        assert result["precision"] >= 0.95 and result["recall"] >= 0.95, result
        assert set(result["removed_by_stage"]) == {"exact_dedup", "near_dup"}
        peaks.append({})
        for job in curation:
            kind = _job_kind(job["job"])
            peaks[-1][kind] = max(peaks[-1].get(kind, 0), job["max_rss_mb"])
    # three times the documents in three times the shards: no job's peak follows the corpus size
    for kind, peak in peaks[1].items():
        assert peak <= 1.2 * peaks[0][kind] + 40, (kind, peaks)
