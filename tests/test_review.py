"""Review decisions: kept in the store, mirrored in the catalog, from the CLI and from runs."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from assetgen.flows.cli.app import app
from assetgen.tasks.catalog import table as cat
from assetgen.tasks.catalog.rows import row_from_sidecar
from assetgen.tasks.review.decisions import (
    REVIEW_OFF,
    current_state,
    new_decision,
    read_decisions,
)
from assetgen.tasks.review.record import decide, reviewable
from assetgen.tasks.store.assets import AssetStore, Sidecar, asset_folder
from tests.test_catalog import put_asset, sidecar


@pytest.fixture
def store(tmp_path: Path) -> AssetStore:
    return AssetStore(str(tmp_path / "store"))


def stored(store: AssetStore, *ids: str, **over: Any) -> list[Sidecar]:
    """Assets in the store and the catalog, as a run leaves them."""
    sidecars = [sidecar(a, sha256=a.ljust(64, "0"), **over) for a in ids]
    for sc in sidecars:
        put_asset(store, sc)
    cat.commit(store, [row_from_sidecar(store, sc) for sc in sidecars], "run-1")
    return sidecars


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def states(store: AssetStore) -> dict[str, tuple[Any, ...]]:
    table = cat.read_catalog(store)
    return {
        r["asset_id"]: (r["review_state"], r["review_note"], r["reviewed_by"])
        for r in table.to_pylist()
    }


def test_decisions_from_the_cli_reach_the_store_and_the_catalog(store: AssetStore) -> None:
    stored(store, "a1", "a2", "a3")
    assert states(store) == {a: ("pending", None, None) for a in ("a1", "a2", "a3")}
    ok = cli("review", "approve", "a1", "--store", store.url, "--reviewer", "ana")
    assert ok.exit_code == 0, ok.output
    assert "1 of 1 assets approved" in ok.stdout
    rejected = cli(
        "review", "reject", "a2", "a3", "--note", "logo is blurred", "--store", store.url
    )
    assert rejected.exit_code == 0, rejected.output
    found = states(store)
    assert found["a1"] == ("approved", None, "ana")
    assert found["a2"][:2] == found["a3"][:2] == ("rejected", "logo is blurred")
    # The store holds each decision whole, with the bytes it judged.
    (decision,) = read_decisions(store, asset_folder({"campaign": "spring"}, "a1"))
    assert (decision.state, decision.reviewer, decision.sha256) == (
        "approved",
        "ana",
        "a1" + "0" * 62,
    )

    listed = cli(
        "catalog", "list", "--store", store.url, "--review", "rejected", "--format", "json"
    )
    assert sorted(json.loads(line)["asset_id"] for line in listed.stdout.splitlines()) == [
        "a2",
        "a3",
    ]
    as_json = cli("review", "list", "--store", store.url, "--state", "approved", "--json")
    assert [json.loads(line)["asset_id"] for line in as_json.stdout.splitlines()] == ["a1"]
    text = cli("review", "list", "--store", store.url)
    assert "0 pending, 1 approved, 2 rejected" in text.stdout


def test_undo_takes_the_last_decision_back(store: AssetStore) -> None:
    stored(store, "a1")
    cli("review", "approve", "a1", "--store", store.url)
    cli("review", "reject", "a1", "--note", "wrong colour", "--store", store.url)
    assert states(store)["a1"][0] == "rejected"
    assert cli("review", "undo", "a1", "--store", store.url).exit_code == 0
    assert states(store)["a1"][0] == "approved"
    cli("review", "undo", "a1", "--store", store.url)
    assert states(store)["a1"][0] == "pending"
    assert cli("review", "undo", "a1", "--store", store.url).exit_code == 0  # nothing left
    assert states(store)["a1"][0] == "pending"
    assert len(read_decisions(store, asset_folder({"campaign": "spring"}, "a1"))) == 5


def test_bulk_decisions_by_where_take_current_assets_only(store: AssetStore) -> None:
    stored(store, "a1", "a2")
    stored(store, "b1", partition={"campaign": "fall"})
    later = datetime(2026, 11, 2, tzinfo=UTC)
    # a newer version of a2's slot: a2 is superseded and not approved by --where.
    newer = sidecar("a9", row_id="sku-a2", sha256="9" * 64, created_at=later)
    put_asset(store, newer)
    cat.commit(store, [row_from_sidecar(store, newer)], "run-2")
    done = cli("review", "approve", "--where", "campaign=spring", "--store", store.url, "--json")
    assert done.exit_code == 0, done.output
    decided = {json.loads(line)["asset_id"] for line in done.stdout.splitlines()}
    assert decided == {"a1", "a9"}
    found = states(store)
    assert found["a2"][0] == found["b1"][0] == "pending"


def test_bad_decisions_are_refused_before_anything_is_written(store: AssetStore) -> None:
    stored(store, "a1")
    no_note = cli("review", "reject", "a1", "--store", store.url)
    assert no_note.exit_code == 2 and "--note" in no_note.output
    for bad in ("nope", "../a1", "a1/../../etc"):
        refused = cli("review", "approve", "a1", bad, "--store", store.url)
        assert refused.exit_code == 2 and "not a generated asset of the catalog" in refused.output
    nothing = cli("review", "approve", "--store", store.url)
    assert nothing.exit_code == 2
    failed = failed_row(store, "f1")
    cat.commit(store, [failed], "run-1")
    assert cli("review", "approve", "f1", "--store", store.url).exit_code == 2  # no image
    assert read_decisions(store, asset_folder({"campaign": "spring"}, "a1")) == []
    assert states(store)["a1"][0] == "pending"


def failed_row(store: AssetStore, asset_id: str) -> dict[str, Any]:
    row = row_from_sidecar(store, sidecar(asset_id)) | {"status": "failed", "error": "500"}
    return row | {k: None for k in ("review_state", "reviewed_by", "reviewed_at", "review_note")}


def test_rebuild_restores_every_decision(store: AssetStore) -> None:
    stored(store, "a1", "a2", "a3")
    cli("review", "approve", "a1", "--store", store.url, "--reviewer", "ana")
    cli("review", "reject", "a2", "--note", "crop cuts the lid", "--store", store.url)
    before = states(store)
    assert cat.rebuild(store) == 3
    assert states(store) == before
    assert before["a3"] == ("pending", None, None)


def test_a_new_record_of_an_asset_keeps_its_review(store: AssetStore) -> None:
    (sc,) = stored(store, "a1")
    cli("review", "approve", "a1", "--store", store.url, "--reviewer", "ana")
    # What refresh or complete-stored commit: the asset's row again, new renditions.
    cat.commit(store, [row_from_sidecar(store, sc) | {"cost_usd": 9.0}], "run-2")
    row = cat.read_catalog(store).to_pylist()[0]
    assert (row["review_state"], row["reviewed_by"], row["cost_usd"]) == ("approved", "ana", 9.0)


def test_an_asset_that_failed_and_then_was_made_waits_for_review(store: AssetStore) -> None:
    cat.commit(store, [failed_row(store, "a1")], "run-1")
    assert states(store)["a1"] == (None, None, None)
    stored(store, "a1")
    assert states(store)["a1"][0] == "pending"


def test_an_approval_holds_for_the_bytes_it_judged_only() -> None:
    yes = new_decision("a1", "approved", "1" * 64, "ana")
    assert current_state([yes], "1" * 64, lambda: "required").review_state == "approved"
    assert current_state([yes], "2" * 64, lambda: "required").review_state == "pending"


def test_a_new_version_of_an_approved_asset_starts_pending(store: AssetStore) -> None:
    stored(store, "a1")
    cli("review", "approve", "a1", "--store", store.url)
    newer = sidecar(
        "a2", row_id="sku-a1", sha256="2" * 64, created_at=datetime(2026, 11, 5, tzinfo=UTC)
    )
    put_asset(store, newer)
    cat.commit(store, [row_from_sidecar(store, newer)], "run-2")
    rows = {r["asset_id"]: r for r in cat.read_catalog(store).to_pylist()}
    assert rows["a1"]["review_state"] == "approved" and rows["a1"]["superseded_by"] == "a2"
    assert rows["a2"]["review_state"] == "pending"


def test_review_off_counts_as_approved_and_undo_returns_there(store: AssetStore) -> None:
    stored(store, "a1", review="off")
    assert states(store)["a1"] == ("approved", None, REVIEW_OFF)
    cli("review", "reject", "a1", "--note", "not for the shop", "--store", store.url)
    assert states(store)["a1"][0] == "rejected"
    cli("review", "undo", "a1", "--store", store.url)
    assert states(store)["a1"][0] == "approved"
    assert cat.rebuild(store) == 1 and states(store)["a1"][0] == "approved"


def test_reviewers_deciding_at_once_lose_nothing(store: AssetStore) -> None:
    ids = [f"a{i}" for i in range(8)]
    stored(store, *ids)
    rows = reviewable(store, ids)
    errors: list[Exception] = []

    def reviewer(n: int) -> None:
        try:
            for i, asset_id in enumerate(ids):
                verdict = "approved" if (i + n) % 2 else "rejected"
                decide(store, {asset_id: rows[asset_id]}, verdict, f"r{n}", "note")
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=reviewer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    found = states(store)
    for asset_id in ids:
        decisions = read_decisions(store, asset_folder({"campaign": "spring"}, asset_id))
        assert len(decisions) == 4  # every reviewer's decision kept
        last = max(decisions, key=lambda d: d.decided_at)
        # The catalog holds the latest decision, whatever order the commits landed in.
        assert found[asset_id] == (last.state, last.note, last.reviewer)


def test_a_run_says_how_many_wait_for_review(
    make_planner, prices, tmp_path: Path, store: AssetStore
) -> None:
    from assetgen.tasks.config.job import load_job_config
    from assetgen.tasks.generation.placeholder import PlaceholderProvider
    from assetgen.tasks.generation.run import generate
    from assetgen.tasks.review.waiting import waiting_for_review
    from assetgen.tasks.store.assets import now_utc
    from tests.helpers import plan_all, write_manifest

    manifest = write_manifest(
        str(tmp_path / "m.csv"), [{"id": f"r{i}", "prompt": f"image {i}"} for i in range(3)]
    )
    for review, run_id in (("required", "run-a"), ("off", "run-b")):
        cfg = load_job_config(None, {"renditions": [], "review": review, "store": store.url})
        jobs, _ = plan_all(make_planner(cfg), manifest)
        generate(jobs, cfg, store, run_id, now_utc(), prices, PlaceholderProvider(prices))
        found = waiting_for_review(store, cfg, run_id, [run_id])
        if review == "required":
            assert found["pending"] == 3 and found["command"].endswith(f"--run {run_id}")
            cli("review", "approve", jobs[0].asset_id, "--store", store.url)
            assert waiting_for_review(store, cfg, run_id, [run_id])["pending"] == 2
        else:
            assert found == {"required": False, "pending": 0, "command": None}


def test_decision_times_order_the_state_not_file_names() -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    first = new_decision("a1", "rejected", "s", "ana", "dark").model_copy(
        update={"decided_at": t0 + timedelta(seconds=5)}
    )
    second = new_decision("a1", "approved", "s", "bo").model_copy(update={"decided_at": t0})
    assert current_state([first, second], "s", lambda: "required").review_state == "rejected"
