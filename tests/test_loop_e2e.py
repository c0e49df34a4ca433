"""The whole loop, as the README's quick start walks it: demo run, review, revise, publish."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from assetgen.flows.cli.app import app
from assetgen.tasks.renditions.provenance import read_provenance

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def json_lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_demo_review_revise_publish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    store = str(tmp_path / "assets")
    # make demo
    demo = cli(
        "run", "examples/manifest.csv", "--provider", "placeholder", "--store", store,
        "--ipm", "600", "--json",
    )  # fmt: skip
    assert demo.exit_code == 0, demo.output
    summary = json.loads(demo.stdout)
    made = summary["generated"]
    assert made > 2 and summary["review"]["pending"] == made

    pending = json_lines(cli("review", "list", "--store", store, "--state", "pending", "--json"))
    assert len(pending) == made
    rejected, *approved = [r["asset_id"] for r in pending]
    note = "the mugs should be blue"
    assert cli("review", "reject", rejected, "--note", note, "--store", store).exit_code == 0
    assert cli("review", "approve", *approved, "--store", store).exit_code == 0

    revised = cli("revise", "--store", store, "--json")
    assert revised.exit_code == 0, revised.output
    assert json.loads(revised.stdout)["generated"] == 1
    new = json_lines(cli("review", "list", "--store", store, "--state", "pending", "--json"))
    assert len(new) == 1 and new[0]["asset_id"] != rejected
    shown = cli("catalog", "show", new[0]["asset_id"], "--store", store)
    assert shown.exit_code == 0, shown.output
    row = json.loads(shown.stdout)
    assert (row["revision"], row["revision_of"], row["revision_note"]) == (1, rejected, note)
    assert cli("review", "approve", new[0]["asset_id"], "--store", store).exit_code == 0

    out = tmp_path / "published"
    # The demo manifest asks for two variants of one row: they need a key each.
    layout = ["--layout", "{row_id}/{variant}/{rendition}.{ext}"]
    published = cli("publish", "--store", store, "--to", str(out), *layout, "--json")
    assert published.exit_code == 0, published.output
    with (out / "feed.csv").open(newline="") as f:
        feed = list(csv.DictReader(f))
    assert {r["asset_id"] for r in feed} == {*approved, new[0]["asset_id"]}  # not the rejected
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {line["key"] for line in feed} == files - {
        "feed.csv",
        "feed.jsonl",
        ".assetgen-publish.json",
    }
    # Byte for byte as stored: the AI-generated mark is still in every published file.
    assert all(read_provenance((out / line["key"]).read_bytes()) for line in feed)
    again = cli("publish", "--store", store, "--to", str(out), *layout, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["copied"] == 0
