"""Generated manifests against the invariants of DESIGN.md (hypothesis)."""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assetgen.tasks.plan.jobs import Planner
from assetgen.tasks.store.assets import asset_folder
from tests.helpers import plan_all, write_manifest

TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=30,
)
NASTY = st.sampled_from(["..", ".", "", "/", "a/b", "../../etc", " x", "CON", "%2e%2e", "\\"])
SIZES = st.sampled_from(
    [
        "",
        "auto",
        "1024x1024",
        "1536x1024",
        "2048x1152",
        "1000x1000",
        "4000x4000",
        "big",
        "01024x1024",
    ]
)
ROW = st.fixed_dictionaries(
    {
        "id": st.one_of(TEXT, NASTY, st.sampled_from(["dup", "dup2"])),
        "prompt": st.one_of(TEXT, st.just("")),
        "size": SIZES,
        "quality": st.sampled_from(["", "low", "high", "ultra"]),
        "campaign": st.one_of(TEXT, NASTY),
    }
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(ROW, min_size=1, max_size=12), fmt=st.sampled_from(["csv", "jsonl"]))
def test_plan_invariants(
    rows: list[dict[str, str]], fmt: str, tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    manifest = write_manifest(str(tmp_path / f"m.{fmt}"), rows)
    jobs, rejects = plan_all(make_planner(partition_by=["campaign"]), manifest)

    # Every row ends up exactly once: as jobs or as rejects, never both, never neither.
    job_rows = {j.row for j in jobs}
    reject_rows = {r.row for r in rejects}
    assert not job_rows & reject_rows
    assert job_rows | reject_rows == set(range(1, len(rows) + 1))

    # An id is used by one row at most; later repeats are rejected.
    first_row: dict[str, int] = {}
    for job in jobs:
        assert first_row.setdefault(job.row_id, job.row) == job.row

    for job in jobs:
        # Nothing escapes the store root.
        folder = asset_folder(job.partition, job.asset_id)
        assert not posixpath.isabs(folder)
        assert posixpath.normpath(folder) == folder and ".." not in folder.split("/")
        assert len(folder.split("/")) == len(job.partition) + 1
        # Worst case bounds the estimate.
        assert 0 <= job.cost_low <= job.cost_expected <= job.cost_worst

    # Never pay twice: planning again gives the same asset_ids.
    again, _ = plan_all(make_planner(partition_by=["campaign"]), manifest)
    assert [j.asset_id for j in again] == [j.asset_id for j in jobs]
    by_params = defaultdict(set)
    for job in jobs:
        by_params[(job.prompt, job.size, job.quality, job.variant)].add(job.asset_id)
    assert all(len(ids) == 1 for ids in by_params.values())
