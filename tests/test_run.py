"""`assetgen run` and the generate_assets flow with the offline placeholder provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from assetgen.flows.cli.app import app
from assetgen.tasks.store.assets import AssetStore

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MANIFEST = EXAMPLES / "manifest.csv"
FAST = ["--provider", "placeholder", "--ipm", "60000"]

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["run", *map(str, args)], env={"COLUMNS": "1000"})


def _json(result: Result) -> dict[str, Any]:
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def test_run_writes_originals_and_sidecars_then_second_run_sends_nothing(tmp_path: Path) -> None:
    store = tmp_path / "assets"
    first = _run(MANIFEST, "--store", store, "--json", *FAST)
    assert first.exit_code == 0, first.output
    s1 = _json(first)
    assert s1["jobs"] == 6 and s1["generated"] == 6 and s1["requests"] == 6
    assert s1["failed"] == s1["budget_exhausted"] == s1["skipped_existing"] == 0
    assert 0 < s1["cost_usd"] <= s1["budget_usd"]
    for key in ("run_id", "rows", "valid", "rejected", "store"):
        assert key in s1

    found = AssetStore(str(store)).existing()
    assert len(found) == 6
    for folder in found.values():
        sidecar = json.loads((store / folder / "asset.json").read_text())
        original = store / folder / sidecar["original"]
        with Image.open(original) as img:
            assert img.size == (sidecar["width"], sidecar["height"])
            assert f"{img.width}x{img.height}" == sidecar["returned"]["size"]
        assert sidecar["usage"]["output_tokens"] > 0
        assert sidecar["cost_usd"] > 0 and sidecar["attempts"] == 1
        assert sidecar["run_id"] == s1["run_id"]

    outcome = _artifact("run-outcome")
    assert {row["status"]: row["jobs"] for row in json.loads(outcome.data)}["generated"] == 6
    assert s1["run_id"] in _artifact("run-summary").data

    second = _run(MANIFEST, "--store", store, "--json", *FAST)
    s2 = _json(second)
    assert second.exit_code == 0
    assert s2["skipped_existing"] == 6
    assert s2["generated"] == 0 and s2["requests"] == 0 and s2["cost_usd"] == 0


def _artifact(key: str) -> Any:
    """The latest Prefect artifact with this key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    assert found, key
    return found[0]


def test_budget_for_part_of_the_manifest(tmp_path: Path) -> None:
    # Each example job's worst case is a few cents; 5 cents cannot cover six.
    result = _run(MANIFEST, "--store", tmp_path / "a", "--budget", "0.05", "--json", *FAST)
    s = _json(result)
    assert result.exit_code == 1
    assert s["budget_exhausted"] > 0
    assert s["generated"] + s["budget_exhausted"] == 6
    assert s["cost_usd"] <= 0.05
    assert s["failed"] == 0


def test_period_cap_counts_earlier_runs_into_the_same_store(tmp_path: Path) -> None:
    store = tmp_path / "a"
    config = tmp_path / "job.yaml"
    config.write_text("budget:\n  cap_usd: null\n  period: month\n  period_cap_usd: 0.2\n")
    first = _json(_run(MANIFEST, "-c", config, "--store", store, "--json", *FAST))
    assert first["generated"] == 6 and first["cost_usd"] < 0.2
    other = tmp_path / "other.csv"
    other.write_text(
        "id,prompt,quality\n" + "".join(f"x{i},another image {i},high\n" for i in range(5))
    )
    second = _json(_run(other, "-c", config, "--store", store, "--json", *FAST))
    period = second["period"]
    assert period["period"] == "month" and period["cap_usd"] == 0.2
    assert period["spent_before_usd"] == pytest.approx(first["cost_usd"], abs=1e-6)
    assert first["cost_usd"] + second["cost_usd"] <= 0.2
    assert period["left_after_usd"] == pytest.approx(
        0.2 - first["cost_usd"] - second["cost_usd"], abs=1e-6
    )
    assert second["budget_exhausted"] > 0
    text = _run(other, "-c", config, "--store", store, *FAST).stdout
    assert f"month {period['key']}: $" in text and "spent before this run" in text


def test_rejected_rows_go_to_the_store_and_the_rest_runs(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,prompt,size\nok,a red chair,1024x1024\nbad,a blue chair,1000x1000\n")
    result = _run(manifest, "--store", tmp_path / "a", "--json", *FAST)
    s = _json(result)
    assert result.exit_code == 0  # every valid row has its asset
    assert (s["valid"], s["rejected"], s["generated"]) == (1, 1, 1)
    rejects = Path(s["rejects_file"]).read_text()
    assert "bad" in rejects and "size" in rejects


def test_unreadable_manifest_exits_2_and_spends_nothing(tmp_path: Path) -> None:
    result = _run(tmp_path / "nope.csv", "--store", tmp_path / "a", *FAST)
    assert result.exit_code == 2
    assert "not found" in result.stderr
    assert not (tmp_path / "a" / "_ledger").exists()


def test_openai_without_key_exits_2_before_prefect(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = _run(MANIFEST, "--store", tmp_path / "a", "--provider", "openai")
    assert result.exit_code == 2
    assert "OPENAI_API_KEY" in result.stderr


def test_console_script_runs_on_its_own_embedded_server(tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "COLUMNS": "200"}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run(
        [
            Path(sys.executable).parent / "assetgen",
            "run",
            MANIFEST,
            "--store",
            tmp_path / "a",
            "--json",
            *FAST,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["generated"] == 6
