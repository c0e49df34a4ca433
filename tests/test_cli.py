"""`assetgen plan`: counts, JSON output, the rejects file and exit codes."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from assetgen.flows.cli.app import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MANIFEST = EXAMPLES / "manifest.csv"
MIXED = EXAMPLES / "mixed.csv"
CAMPAIGN = EXAMPLES / "campaign.yaml"
REJECT_COLUMNS = ["row", "id", "column", "code", "reason"]

# In examples/mixed.csv, each bad row's id and the one column it breaks.
MIXED_BAD = {
    "bad-size": "size",
    "bad-quality": "quality",
    "bad-compression": "output_compression",
    "bad-transparent": "background",
    "bad-n": "n",
    "empty-prompt": "prompt",
    "missing-ref": "reference_images",
    "escape": "campaign",
}


def _plan(*args: str | Path, columns: str | None = "1000") -> Result:
    # A wide console by default, so checks on messages do not depend on how long
    # tmp_path is; the test about wrapping runs with the plain 80-column default.
    return CliRunner().invoke(app, ["plan", *map(str, args)], env={"COLUMNS": columns})


def _one_json(stdout: str) -> dict[str, Any]:
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, stdout
    data = json.loads(lines[0])
    assert isinstance(data, dict)
    return data


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _flat(text: str) -> str:
    """Text with every run of whitespace made one space (the console may wrap)."""
    return " ".join(text.split())


def _example_counts() -> tuple[int, int]:
    rows = _csv_rows(MANIFEST)
    return len(rows), sum(int(r["n"] or 1) for r in rows)


# --- a good manifest ----------------------------------------------------------------------


def test_plan_example_manifest_json(tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.csv"
    result = _plan(MANIFEST, "--json", "--rejects", rejects)
    assert result.exit_code == 0, result.output
    data = _one_json(result.stdout)
    rows, jobs = _example_counts()
    assert rows == 5 and jobs == 6  # the example itself, so a change there is noticed
    assert data["manifest"] == str(MANIFEST)
    assert data["rows"] == rows
    assert data["valid"] == data["valid_rows"] == rows  # the second name: an alias
    assert data["rejected"] == data["rejected_rows"] == 0
    assert data["jobs"] == jobs
    assert data["duplicate_jobs"] == 0
    cost = data["cost_usd"]
    assert set(cost) == {"low", "expected", "worst"}
    assert 0 < cost["low"] <= cost["expected"] <= cost["worst"]
    assert data["top_reject_reasons"] == []
    assert data["rejects_file"] == str(rejects)
    assert data["budget_usd"] == 5.0  # configs/default.yaml
    assert data["worst_case_fits_budget"] is True
    assert result.stderr == ""


def test_plan_example_manifest_text(tmp_path: Path) -> None:
    result = _plan(MANIFEST, "--rejects", tmp_path / "r.csv")
    assert result.exit_code == 0, result.output
    out = _flat(result.stdout)
    assert "rows 5 valid 5 rejected 0" in out
    assert "jobs 6 images" in out
    assert "worst case" in out
    assert "Top reject reasons" not in out


def test_plan_json_cost_matches_text_cost(tmp_path: Path) -> None:
    data = _one_json(_plan(MANIFEST, "--json", "--rejects", tmp_path / "a.csv").stdout)
    text = _flat(_plan(MANIFEST, "--rejects", tmp_path / "b.csv").stdout)
    for label, key in (("online", "cost_usd"), ("batch (--mode batch)", "batch_cost_usd")):
        cost = data[key]
        assert f"{label} ${cost['low']:,.4f} ${cost['expected']:,.4f} ${cost['worst']:,.4f}" in text
    # The Batch API price is half the online one for gpt-image-2.
    assert data["batch_cost_usd"]["worst"] == pytest.approx(data["cost_usd"]["worst"] / 2, 1e-4)


# --- a mix of good and bad rows -----------------------------------------------------------


def test_plan_mixed_manifest_counts_and_rejects_file(tmp_path: Path) -> None:
    rejects = tmp_path / "out" / "mixed.rejects.csv"
    result = _plan(MIXED, "-c", CAMPAIGN, "--json", "--rejects", rejects)
    assert result.exit_code == 1, result.output
    data = _one_json(result.stdout)

    manifest_rows = _csv_rows(MIXED)
    assert data["rows"] == len(manifest_rows) == 11
    # Every bad row plus the second use of id ok-1.
    assert data["rejected_rows"] == len(MIXED_BAD) + 1
    assert data["valid_rows"] == 2
    assert data["jobs"] == 2
    assert data["rejects_file"] == str(rejects)

    lines = _csv_rows(rejects)
    with rejects.open(newline="", encoding="utf-8") as f:
        assert next(csv.reader(f)) == REJECT_COLUMNS
    # One line per reason; each of these rows breaks exactly one rule.
    assert len(lines) == len(MIXED_BAD) + 1
    found = {(line["id"], line["column"]) for line in lines}
    assert found == {*MIXED_BAD.items(), ("ok-1", "id")}
    for line in lines:
        assert line["code"] and line["reason"], line
        row_number = int(line["row"])
        assert manifest_rows[row_number - 1]["id"] == line["id"], line
    duplicate = next(line for line in lines if line["column"] == "id")
    assert duplicate["row"] == "11"
    assert duplicate["code"] == "duplicate_id"
    assert "row 1" in duplicate["reason"]
    by_id = {line["id"]: line for line in lines}
    assert "1000x1000" in by_id["bad-size"]["reason"]
    assert "ultra" in by_id["bad-quality"]["reason"]
    assert "does-not-exist.png" in by_id["missing-ref"]["reason"]

    reasons = {(r["column"], r["count"]) for r in data["top_reject_reasons"]}
    assert reasons == {(column, 1) for column in [*MIXED_BAD.values(), "id"]}


def test_plan_mixed_manifest_text_lists_reasons(tmp_path: Path) -> None:
    rejects = tmp_path / "r.csv"
    result = _plan(MIXED, "-c", CAMPAIGN, "--rejects", rejects)
    assert result.exit_code == 1, result.output
    out = _flat(result.stdout)
    assert "rows 11 valid 2 rejected 9" in out
    assert "Top reject reasons" in out
    for column in MIXED_BAD.values():
        assert column in out
    assert "row 3:" in out  # bad-size, with its row number
    assert "multiples of 16" in out


def test_partition_checks_need_the_campaign_config(tmp_path: Path) -> None:
    # Without partition_by the `..` campaign is plain metadata, not a reject.
    data = _one_json(_plan(MIXED, "--json", "--rejects", tmp_path / "r.csv").stdout)
    assert data["rejected_rows"] == len(MIXED_BAD)
    assert data["valid_rows"] == 3
    assert not any(line["column"] == "campaign" for line in _csv_rows(tmp_path / "r.csv"))


# --- unusable input: exit 2, one error, nothing written ----------------------------------


def _assert_bad_input(result: Result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    err = _flat(result.stderr)
    assert err.startswith("error:"), result.stderr
    assert err.count("error:") == 1, result.stderr
    for needle in needles:
        assert needle in err, result.stderr
    assert "Traceback" not in result.stderr
    return err


def _assert_nothing_written(folder: Path) -> None:
    assert list(folder.iterdir()) == [], "no rejects file and no leftover temp file"


def test_missing_manifest_exits_2(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = _plan(tmp_path / "nope.csv", "--rejects", out / "r.csv")
    _assert_bad_input(result, "nope.csv", "not found")
    _assert_nothing_written(out)


def test_error_keeps_long_manifest_path_intact(tmp_path: Path) -> None:
    # A path someone copies from the error must not be broken across lines.
    deep = tmp_path / ("a-rather-long-folder-name-" * 3) / "another-long-folder" / "manifest.csv"
    result = _plan(deep, "--rejects", tmp_path / "r.csv", columns=None)
    assert result.exit_code == 2
    assert f"{deep}: manifest not found" in result.stderr


def test_manifest_without_id_column_exits_2(tmp_path: Path) -> None:
    manifest = tmp_path / "noid.csv"
    manifest.write_text("sku,prompt\na,A mug\n")
    out = tmp_path / "out"
    out.mkdir()
    result = _plan(manifest, "--rejects", out / "r.csv")
    _assert_bad_input(result, "no `id` column", "sku")
    _assert_nothing_written(out)


def test_unknown_config_key_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "job.yaml"
    config.write_text("budgett_usd: 3\n")
    out = tmp_path / "out"
    out.mkdir()
    result = _plan(MANIFEST, "-c", config, "--rejects", out / "r.csv")
    _assert_bad_input(result, "job.yaml", "budgett_usd")
    _assert_nothing_written(out)


def test_invalid_yaml_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "job.yaml"
    config.write_text("defaults: [1, 2\n")
    out = tmp_path / "out"
    out.mkdir()
    result = _plan(MANIFEST, "--config", config, "--rejects", out / "r.csv")
    _assert_bad_input(result, "job.yaml", "not valid YAML")
    _assert_nothing_written(out)


def test_missing_config_exits_2(tmp_path: Path) -> None:
    result = _plan(MANIFEST, "-c", tmp_path / "nope.yaml", "--rejects", tmp_path / "r.csv")
    _assert_bad_input(result, "nope.yaml", "not found")


def test_unknown_extension_exits_2_and_format_flag_fixes_it(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.txt"
    manifest.write_text("id,prompt\na,A mug\n")
    result = _plan(manifest, "--rejects", tmp_path / "r.csv")
    _assert_bad_input(result, "--format")
    fixed = _plan(manifest, "--format", "csv", "--json", "--rejects", tmp_path / "r.csv")
    assert fixed.exit_code == 0, fixed.output
    assert _one_json(fixed.stdout)["jobs"] == 1


def test_error_with_json_is_one_json_object(tmp_path: Path) -> None:
    result = _plan(tmp_path / "nope.csv", "--json", "--rejects", tmp_path / "r.csv")
    assert result.exit_code == 2
    data = _one_json(result.stdout)
    assert "not found" in data["error"]
    assert "not found" in _flat(result.stderr)


def test_old_rejects_file_untouched_when_manifest_unreadable(tmp_path: Path) -> None:
    rejects = tmp_path / "r.csv"
    rejects.write_text("row,id,column,code,reason\n1,a,prompt,missing,prompt is empty\n")
    before = rejects.read_text()
    result = _plan(tmp_path / "nope.csv", "--rejects", rejects)
    assert result.exit_code == 2
    assert rejects.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]


# --- budget -------------------------------------------------------------------------------


def test_budget_flag_overrides_config(tmp_path: Path) -> None:
    big = _one_json(
        _plan(MANIFEST, "--json", "--budget", "100", "--rejects", tmp_path / "a.csv").stdout
    )
    assert big["budget_usd"] == 100.0
    assert big["worst_case_fits_budget"] is True

    tiny = _plan(MANIFEST, "--json", "--budget", "0.001", "--rejects", tmp_path / "b.csv")
    assert tiny.exit_code == 0  # over budget is a warning for plan, not a failure
    data = _one_json(tiny.stdout)
    assert data["budget_usd"] == 0.001
    assert data["cost_usd"]["worst"] > 0.001
    assert data["worst_case_fits_budget"] is False
    assert data["jobs"] == big["jobs"]


def test_budget_flag_wins_over_config_file(tmp_path: Path) -> None:
    config = tmp_path / "job.yaml"
    config.write_text("budget:\n  cap_usd: 0.0001\n")
    from_file = _one_json(
        _plan(MANIFEST, "-c", config, "--json", "--rejects", tmp_path / "a.csv").stdout
    )
    assert from_file["budget_usd"] == 0.0001
    assert from_file["worst_case_fits_budget"] is False
    flag = _one_json(
        _plan(
            MANIFEST, "-c", config, "--budget", "50", "--json", "--rejects", tmp_path / "b.csv"
        ).stdout
    )
    assert flag["budget_usd"] == 50.0
    assert flag["worst_case_fits_budget"] is True


def test_tiny_budget_warns_in_text(tmp_path: Path) -> None:
    result = _plan(MANIFEST, "--budget", "0.001", "--rejects", tmp_path / "r.csv")
    assert "over budget" in _flat(result.stdout)


def test_negative_budget_exits_2(tmp_path: Path) -> None:
    result = _plan(MANIFEST, "--budget", "-1", "--rejects", tmp_path / "r.csv")
    _assert_bad_input(result, "budget.cap_usd")


# --- the rejects file ---------------------------------------------------------------------


def test_rejects_file_is_written_with_header_only_when_all_rows_are_fine(tmp_path: Path) -> None:
    rejects = tmp_path / "r.csv"
    rejects.write_text("row,id,column,code,reason\n3,old,size,bad_size,stale reason\n")
    result = _plan(MANIFEST, "--rejects", rejects)
    assert result.exit_code == 0, result.output
    assert rejects.read_text(encoding="utf-8").splitlines() == [",".join(REJECT_COLUMNS)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]  # no temp file left


def test_rejects_file_replaces_an_older_longer_one(tmp_path: Path) -> None:
    rejects = tmp_path / "r.csv"
    _plan(MIXED, "-c", CAMPAIGN, "--rejects", rejects)
    assert len(_csv_rows(rejects)) == 9
    result = _plan(MANIFEST, "--rejects", rejects)
    assert result.exit_code == 0
    assert _csv_rows(rejects) == []


def test_rejects_file_defaults_to_manifest_name_in_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = _plan(MIXED, "-c", CAMPAIGN, "--json")
    assert result.exit_code == 1
    assert _one_json(result.stdout)["rejects_file"] == "mixed.rejects.csv"
    assert len(_csv_rows(tmp_path / "mixed.rejects.csv")) == 9


# --- the installed console script ---------------------------------------------------------


def test_console_script_json(tmp_path: Path) -> None:
    exe = shutil.which("assetgen") or str(Path(sys.executable).parent / "assetgen")
    assert Path(exe).exists(), exe
    proc = subprocess.run(
        [exe, "plan", str(MIXED), "-c", str(CAMPAIGN), "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "40"},
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    data = _one_json(proc.stdout)
    assert data["rows"] == 11
    assert data["valid_rows"] == 2
    assert data["rejected_rows"] == 9
    assert data["jobs"] == 2
    assert data["cost_usd"]["low"] <= data["cost_usd"]["expected"] <= data["cost_usd"]["worst"]
    assert len(_csv_rows(tmp_path / "mixed.rejects.csv")) == 9
