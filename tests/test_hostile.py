"""Hostile and broken input: each problem is a clear reject, nothing escapes the store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from assetgen.tasks.config.job import load_job_config
from assetgen.tasks.generation.placeholder import PlaceholderProvider
from assetgen.tasks.generation.run import generate
from assetgen.tasks.manifest import references
from assetgen.tasks.plan.jobs import Planner
from assetgen.tasks.plan.pricing import PriceTable
from assetgen.tasks.store.assets import AssetStore, now_utc
from tests.helpers import plan_all, write_manifest


@pytest.fixture
def probed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URI the planner opens."""
    seen: list[str] = []
    real = references.probe

    def spy(uri: str):
        seen.append(uri)
        return real(uri)

    monkeypatch.setattr(references, "probe", spy)
    return seen


def test_references_outside_allowed_roots_are_refused_unread(
    tmp_path: Path, make_planner: Callable[..., Planner], probed: list[str]
) -> None:
    (tmp_path / "m").mkdir()
    inside = tmp_path / "m" / "ok.png"
    Image.new("RGB", (64, 64), "red").save(inside)
    outside = tmp_path / "secret.png"
    Image.new("RGBA", (64, 64), (0, 0, 255, 128)).save(outside)
    manifest = write_manifest(
        str(tmp_path / "m" / "m.csv"),
        [
            {"id": "ok", "prompt": "p", "reference_images": "ok.png"},
            {"id": "abs", "prompt": "p", "reference_images": "/etc/passwd"},
            {"id": "url", "prompt": "p", "reference_images": "file:///etc/passwd"},
            {"id": "up", "prompt": "p", "reference_images": "../secret.png"},
            {"id": "mask", "prompt": "p", "reference_images": "ok.png", "mask": str(outside)},
        ],
    )
    jobs, rejects = plan_all(make_planner(reference_roots=[]), manifest)
    assert [j.row_id for j in jobs] == ["ok"]
    by_id = {r.id: r for r in rejects}
    assert set(by_id) == {"abs", "url", "up", "mask"}
    assert all(r.code == "not_allowed" for r in rejects)
    assert not any("passwd" in u or "secret" in u for u in probed)

    # An allow-listed root opens the outside file.
    jobs, rejects = plan_all(make_planner(reference_roots=[str(tmp_path)]), manifest)
    assert {j.row_id for j in jobs} == {"ok", "up", "mask"}


def test_decompression_bomb_reference_is_rejected(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    Image.new("1", (9000, 9000)).save(tmp_path / "bomb.png")  # 81 MP, a few KB on disk
    manifest = write_manifest(
        str(tmp_path / "m.csv"), [{"id": "b", "prompt": "p", "reference_images": "bomb.png"}]
    )
    jobs, rejects = plan_all(make_planner(), manifest)
    assert not jobs
    assert "megapixels" in rejects[0].reason and rejects[0].column == "reference_images"


def test_huge_prompt_cell_is_one_clear_reject(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    manifest = write_manifest(
        str(tmp_path / "m.csv"),
        [
            {"id": "a", "prompt": "fine"},
            {"id": "big", "prompt": "x" * 10_000_000},
            {"id": "c", "prompt": "fine too"},
        ],
    )
    jobs, rejects = plan_all(make_planner(), manifest)
    assert [j.row_id for j in jobs] == ["a", "c"]
    assert rejects[0].id == "big" and rejects[0].column == "prompt"
    assert "10,000,000 characters" in rejects[0].reason


def test_path_trick_ids_stay_inside_the_store(
    tmp_path: Path, make_planner: Callable[..., Planner], prices: PriceTable
) -> None:
    ids = [
        "../../etc",
        "a/b",
        "CON",
        "\uff45\uff54\uff43",
        "..",
        "/abs",
        "C:\\x",
    ]  # fullwidth "etc"
    manifest = write_manifest(
        str(tmp_path / "m.csv"), [{"id": i, "prompt": f"image for {i}"} for i in ids]
    )
    jobs, rejects = plan_all(make_planner(), manifest)
    assert not rejects and len(jobs) == len(ids)
    store = AssetStore(str(tmp_path / "store"))
    cfg = load_job_config(None, {"limits.ipm": 60_000, "renditions": []})
    report = generate(jobs, cfg, store, "r", now_utc(), prices, PlaceholderProvider(prices))
    assert {o.status for o in report.outcomes} == {"generated"}
    inside = {p.relative_to(tmp_path) for p in tmp_path.rglob("*")}
    assert all(p.parts[0] in ("m.csv", "store") for p in inside)
    assert len(store.existing()) == len(ids)


def test_unbalanced_quote_is_a_reject_not_a_silent_merge(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    path = tmp_path / "m.csv"
    path.write_text('id,prompt\nok,fine\nbad,"never closed\nlost,swallowed by the quote\n')
    jobs, rejects = plan_all(make_planner(), str(path))
    assert [j.row_id for j in jobs] == ["ok"]
    assert rejects[0].row == 2 and rejects[0].code == "csv_syntax"


def test_utf16_manifest_is_one_clear_error(tmp_path: Path) -> None:
    from assetgen.tasks.manifest.read import ManifestError, read_manifest

    path = tmp_path / "m.csv"
    path.write_text("id,prompt\na,hello\n", encoding="utf-16")
    with pytest.raises(ManifestError, match="UTF-16"):
        list(read_manifest(str(path)))
