"""Publish: approved, current versions only, to stable keys, whole, idempotent, with a feed."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fsspec
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner, Result

import assetgen.tasks.publish.copy as copy_module
import assetgen.tasks.publish.plan as plan_module
import assetgen.tasks.publish.sources as sources_module
from assetgen.flows.cli.publish import publish as publish_command
from assetgen.tasks.catalog import table as cat
from assetgen.tasks.catalog.rows import row_from_sidecar
from assetgen.tasks.publish.config import PublishConfig
from assetgen.tasks.publish.keys import MANIFEST, BadLayout, parse_layout, url_of
from assetgen.tasks.publish.plan import PublishRefused
from assetgen.tasks.publish.record import read_records
from assetgen.tasks.publish.run import PublishOptions, publish
from assetgen.tasks.renditions.credentials import SigningMaterial, read_credentials, sign_original
from assetgen.tasks.renditions.made_up_pki import shared_pki
from assetgen.tasks.renditions.postprocess import store_renditions
from assetgen.tasks.renditions.presets import Preset
from assetgen.tasks.renditions.signing import render_and_sign
from assetgen.tasks.review.decisions import new_decision, write_decision
from assetgen.tasks.review.record import decide, reviewable
from assetgen.tasks.store.assets import AssetStore, Sidecar, asset_folder
from tests.test_catalog import sidecar

PRESETS = {
    "thumb": Preset(width=32, height=32, fit="pad", format="webp", quality=80),
    "card": Preset(width=48, height=24, fit="cover", format="jpeg", quality=85),
}
DAY = datetime(2026, 11, 1, tzinfo=UTC)


def png(color: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def add_asset(
    store: AssetStore,
    asset_id: str,
    *,
    color: tuple[int, int, int] = (200, 30, 30),
    material: SigningMaterial | None = None,
    **over: Any,
) -> Sidecar:
    """An asset as a run leaves it: original, renditions (signed with `material`), catalog row."""
    image = png(color)
    if material is not None:
        image = sign_original(material, image, "image/png")
    over.setdefault("row_id", f"sku-{asset_id}")
    over.setdefault("created_at", DAY)
    sc = sidecar(
        asset_id,
        sha256=hashlib.sha256(image).hexdigest(),
        bytes=len(image),
        width=64,
        height=64,
        **over,
    )
    folder = asset_folder(sc.partition, asset_id)
    store.write_asset(folder, sc.original, image, sc)
    sc = store_renditions(store, folder, sc, render_and_sign(image, PRESETS, material))
    cat.commit(store, [row_from_sidecar(store, sc)], sc.run_id)
    return sc


def review(store: AssetStore, state: str, *ids: str) -> None:
    note = "wrong colour" if state == "rejected" else None
    decide(store, reviewable(store, ids), state, "ana", note)  # type: ignore[arg-type]


def opts(to: str, **over: Any) -> PublishOptions:
    return PublishOptions(to=to, **over)


def files_under(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in ("feed.csv", "feed.jsonl", MANIFEST)
    }


def feed(root: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (root / "feed.jsonl").read_text().splitlines()]


@pytest.fixture
def store(tmp_path: Path) -> AssetStore:
    return AssetStore(str(tmp_path / "store"))


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return tmp_path / "shop"


def test_only_approved_current_assets_go_out_with_a_feed_that_matches(
    store: AssetStore, shop: Path
) -> None:
    add_asset(store, "a1", metadata={"alt_text": "A red chair"})
    add_asset(store, "a2")
    add_asset(store, "a3")
    add_asset(store, "b1", partition={"campaign": "fall"})
    review(store, "approved", "a1", "b1")
    review(store, "rejected", "a3")  # a2 stays pending
    summary = publish(store, opts(str(shop), base_url="https://img.example.com/"))

    files = files_under(shop)
    assert set(files) == {
        "campaign=spring/sku-a1/thumb.webp",
        "campaign=spring/sku-a1/card.jpg",
        "campaign=fall/sku-b1/thumb.webp",
        "campaign=fall/sku-b1/card.jpg",
    }
    assert summary["copied"] == 4 and summary["selected"] == 2 and summary["skipped"] == []
    # Byte for byte what the store has.
    stored = store.read_bytes(f"{asset_folder({'campaign': 'spring'}, 'a1')}/thumb.webp")
    assert files["campaign=spring/sku-a1/thumb.webp"] == stored

    # The feed, JSON Lines and CSV, has a line per file and nothing else, each line true.
    lines = feed(shop)
    assert sorted(line["key"] for line in lines) == sorted(files)
    for line in lines:
        data = files[line["key"]]
        assert line["bytes"] == len(data)
        assert line["sha256"] == hashlib.sha256(data).hexdigest()
        assert line["url"] == f"https://img.example.com/{line['key']}"
        with Image.open(io.BytesIO(data)) as im:
            assert (line["width"], line["height"]) == im.size
    a1 = {line["rendition"]: line for line in lines if line["asset_id"] == "a1"}
    assert a1["thumb"]["alt_text"] == "A red chair" and a1["thumb"]["revision"] == 0
    assert a1["thumb"]["partition"] == {"campaign": "spring"} and a1["thumb"]["row_id"] == "sku-a1"
    rows = list(csv.DictReader(io.StringIO((shop / "feed.csv").read_text())))
    assert [(r["key"], r["sha256"]) for r in rows] == [(x["key"], x["sha256"]) for x in lines]
    assert rows[0]["partition"].startswith("campaign=")

    # The store keeps a record; the catalog knows where each asset went.
    (record,) = read_records(store)
    assert record["run_id"] == summary["run_id"]
    assert {c["key"] for c in record["copies"]} == set(files)
    published = cat.read_catalog(store, columns=["asset_id", "published_uri", "published_at"])
    uris = {r["asset_id"]: r["published_uri"] for r in published.to_pylist()}
    when = {r["asset_id"]: r["published_at"] for r in published.to_pylist()}
    assert uris["a1"] == "https://img.example.com/campaign=spring/sku-a1/thumb.webp"
    assert when["a1"] is not None and when["a2"] is None
    assert uris["a2"] is None and uris["a3"] is None


def test_review_off_assets_go_out_unreviewed_and_others_still_wait(
    store: AssetStore, shop: Path
) -> None:
    add_asset(store, "d1", review="off")  # its job config said `review: off`
    add_asset(store, "r1")
    summary = publish(store, opts(str(shop), renditions=["thumb"]))
    assert [c["asset_id"] for c in summary["copies"]] == ["d1"]
    assert set(files_under(shop)) == {"campaign=spring/sku-d1/thumb.webp"}


def test_a_second_publish_copies_nothing_and_writes_nothing(
    store: AssetStore, shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_asset(store, "a1")
    review(store, "approved", "a1")
    publish(store, opts(str(shop)))
    before = {p: p.stat().st_mtime_ns for p in shop.rglob("*") if p.is_file()}

    # Nothing written; no file read back from the destination, nor hashed again in the store.
    writes: list[str] = []
    hashed: list[int] = []
    real_write, real_hash = copy_module.write_whole, sources_module.sha256_of
    for module in ("run", "record"):
        monkeypatch.setattr(
            f"assetgen.tasks.publish.{module}.write_whole",
            lambda fs, p, *a: writes.append(p) or real_write(fs, p, *a),
        )
    monkeypatch.setattr(sources_module, "sha256_of", lambda d: hashed.append(1) or real_hash(d))
    monkeypatch.setattr(plan_module, "sha256_of", lambda d: hashed.append(1) or real_hash(d))
    again = publish(store, opts(str(shop)))
    assert (again["copied"], again["unchanged"]) == (0, 2)
    assert writes == [] and hashed == []
    assert {p: p.stat().st_mtime_ns for p in shop.rglob("*") if p.is_file()} == before
    assert len(read_records(store)) == 2  # every publish leaves its record

    # A file removed at the destination is put back (the listing shows it missing).
    (shop / "campaign=spring/sku-a1/card.jpg").unlink()
    repaired = publish(store, opts(str(shop)))
    assert (repaired["copied"], repaired["repaired"]) == (1, 1)
    assert (shop / "campaign=spring/sku-a1/card.jpg").exists()


def test_a_newly_approved_version_replaces_the_file_and_the_feed_says_so(
    store: AssetStore, shop: Path
) -> None:
    add_asset(store, "a1")
    review(store, "approved", "a1")
    publish(store, opts(str(shop)))
    old = (shop / "campaign=spring/sku-a1/thumb.webp").read_bytes()

    # A revision of the same slot: pending first, so a1 is withdrawn, not replaced yet.
    add_asset(
        store,
        "a9",
        row_id="sku-a1",
        color=(20, 200, 20),
        created_at=DAY + timedelta(days=1),
        revision=1,
        revision_of="a1",
    )
    waiting = publish(store, opts(str(shop)))
    assert waiting["copied"] == 0
    assert {(w["asset_id"], w["reason"]) for w in waiting["withdrawn"]} == {
        ("a1", "superseded by a9 (pending)")
    }
    assert (shop / "campaign=spring/sku-a1/thumb.webp").read_bytes() == old  # no --prune
    assert {line["withdrawn"] for line in feed(shop)} == {"superseded by a9 (pending)"}

    review(store, "approved", "a9")
    replaced = publish(store, opts(str(shop)))
    assert (replaced["copied"], replaced["replaced"], replaced["withdrawn"]) == (2, 2, [])
    assert {c["replaces"] for c in replaced["copies"]} == {"a1"}
    new = (shop / "campaign=spring/sku-a1/thumb.webp").read_bytes()
    assert new != old
    assert new == store.read_bytes(f"{asset_folder({'campaign': 'spring'}, 'a9')}/thumb.webp")
    lines = feed(shop)
    assert {(x["asset_id"], x["revision"], x["replaces"], x["withdrawn"]) for x in lines} == {
        ("a9", 1, "a1", None)
    }
    assert {x["sha256"] for x in lines if x["rendition"] == "thumb"} == {
        hashlib.sha256(new).hexdigest()
    }


def test_prune_removes_the_files_of_assets_no_longer_approved(
    store: AssetStore, shop: Path
) -> None:
    add_asset(store, "a1")
    add_asset(store, "a2")
    review(store, "approved", "a1", "a2")
    publish(store, opts(str(shop)))
    review(store, "rejected", "a2")

    dry = publish(store, opts(str(shop), prune=True, dry_run=True))
    assert sorted(dry["pruned"]) == [
        "campaign=spring/sku-a2/card.jpg",
        "campaign=spring/sku-a2/thumb.webp",
    ]
    assert (shop / "campaign=spring/sku-a2/thumb.webp").exists()  # a dry run removes nothing

    listed = publish(store, opts(str(shop)))
    assert {w["reason"] for w in listed["withdrawn"]} == {"rejected"} and listed["pruned"] == []
    assert (shop / "campaign=spring/sku-a2/thumb.webp").exists()

    pruned = publish(store, opts(str(shop), prune=True))
    assert len(pruned["pruned"]) == 2
    assert set(files_under(shop)) == {
        "campaign=spring/sku-a1/thumb.webp",
        "campaign=spring/sku-a1/card.jpg",
    }
    assert not (shop / "campaign=spring/sku-a2").exists()  # no empty folders left behind
    assert {line["asset_id"] for line in feed(shop)} == {"a1"}
    uris = {
        r["asset_id"]: r["published_uri"]
        for r in cat.read_catalog(store, columns=["asset_id", "published_uri"]).to_pylist()
    }
    assert uris["a2"] is None and uris["a1"].endswith("sku-a1/thumb.webp")
    assert publish(store, opts(str(shop), prune=True))["withdrawn"] == []


@pytest.mark.parametrize(
    ("over", "layout", "reason"),
    [
        ({"row_id": "../../etc"}, None, "row_id '../../etc' has a slash"),
        ({"row_id": ".."}, None, "row_id '..' is '..'"),
        ({"row_id": "a\\b"}, None, "has a slash or backslash"),
        ({"row_id": "sku\x00"}, None, "U+0000"),
        ({"row_id": "sku\u202egnp.exe"}, None, "U+202E"),
        ({"partition": {"campaign": "x/../.."}}, None, "partition value 'x/../..'"),
        (
            {"metadata": {"slug": "/etc/passwd"}},
            "{slug}/{rendition}.{ext}",
            "metadata column 'slug'",
        ),
        ({"metadata": {"slug": ""}}, "{slug}/{rendition}.{ext}", "is empty"),
        ({}, "{missing}/{rendition}.{ext}", "{missing} is no variable of this asset"),
    ],
)
def test_path_tricks_are_refused_before_anything_is_copied(
    store: AssetStore, shop: Path, over: dict[str, Any], layout: str | None, reason: str
) -> None:
    add_asset(store, "ok1")
    add_asset(store, "bad1", **over)
    review(store, "approved", "ok1", "bad1")
    kwargs = {"layout": layout} if layout else {}
    with pytest.raises(PublishRefused) as refused:
        publish(store, opts(str(shop), **kwargs))
    message = str(refused.value)
    assert "asset bad1" in message and reason in message
    assert not shop.exists()  # not even the good asset's files
    assert read_records(store) == []


@pytest.mark.parametrize(
    "layout",
    [
        "../{row_id}/{rendition}.{ext}",
        "/abs/{row_id}.{ext}",
        "{row_id}//{rendition}.{ext}",
        "{row_id}\\{rendition}",
        "{row_id:>9}/{rendition}",
        "{}",
        "a{partition}/{rendition}",
        "s3://other/{row_id}",
        ".assetgen-publish.json",
        "feed.csv",
        "",
    ],
)
def test_bad_layouts_are_refused_up_front(layout: str) -> None:
    with pytest.raises(BadLayout):
        parse_layout(layout)


def test_two_files_on_one_key_are_refused_naming_both_assets(store: AssetStore, shop: Path) -> None:
    add_asset(store, "a1", row_id="sku-1")
    add_asset(store, "b1", row_id="sku-1", partition={"campaign": "fall"})
    review(store, "approved", "a1", "b1")
    with pytest.raises(PublishRefused) as refused:
        publish(store, opts(str(shop), layout="{row_id}/{rendition}.{ext}"))
    assert "key 'sku-1/thumb.webp'" in str(refused.value)
    assert "asset b1" in str(refused.value) and "asset a1" in str(refused.value)
    assert not shop.exists()
    # Without {rendition} every file of an asset lands on one key.
    with pytest.raises(PublishRefused, match="would both land on it"):
        publish(
            store,
            opts(str(shop), layout="{partition}/{row_id}", renditions=["thumb", "card"]),
        )
    assert not shop.exists()

    # A key held by a still approved asset of an earlier publish is not taken over either.
    publish(
        store, opts(str(shop), where=[("campaign", "spring")], layout="{row_id}/{rendition}.{ext}")
    )
    with pytest.raises(PublishRefused, match="still approved and current"):
        publish(
            store,
            opts(str(shop), where=[("campaign", "fall")], layout="{row_id}/{rendition}.{ext}"),
        )
    # Nor a file the publish did not put there.
    (shop / "mine").mkdir()
    (shop / "mine" / "thumb.webp").write_bytes(b"not an asset")
    with pytest.raises(PublishRefused, match="did not publish there"):
        publish(
            store, opts(str(shop), layout="mine/{rendition}.{ext}", where=[("campaign", "fall")])
        )
    assert (shop / "mine" / "thumb.webp").read_bytes() == b"not an asset"


def test_unicode_keys_stay_readable_and_feed_urls_are_encoded(
    store: AssetStore, shop: Path
) -> None:
    add_asset(store, "a1", row_id="café crème", partition={"campaign": "été 2026"})
    review(store, "approved", "a1")
    publish(store, opts(str(shop), base_url="https://img.example.com", renditions=["thumb"]))
    assert set(files_under(shop)) == {"campaign=été 2026/café crème/thumb.webp"}
    (line,) = feed(shop)
    assert line["url"] == url_of(
        "https://img.example.com", "campaign=été 2026/café crème/thumb.webp"
    )
    assert line["url"] == (
        "https://img.example.com/campaign%3D%C3%A9t%C3%A9%202026/caf%C3%A9%20cr%C3%A8me/thumb.webp".replace(
            "%3D", "="
        )
    )


def test_layout_variables_and_assets_without_a_partition(store: AssetStore, shop: Path) -> None:
    add_asset(store, "a1", partition={}, metadata={"color": "red", "size_cm": 40})
    review(store, "approved", "a1")
    default = publish(store, opts(str(shop), dry_run=True))
    assert sorted(c["key"] for c in default["copies"]) == ["sku-a1/card.jpg", "sku-a1/thumb.webp"]
    publish(
        store,
        opts(str(shop), layout="{color}/{size_cm}cm/{row_id}-v{variant}-{rendition}.{ext}"),
    )
    assert sorted(files_under(shop)) == [
        "red/40cm/sku-a1-v0-card.jpg",
        "red/40cm/sku-a1-v0-thumb.webp",
    ]


def test_the_store_decides_not_the_catalog(store: AssetStore, shop: Path) -> None:
    """A rejection that reached the store but not the catalog (a crash in between) counts."""
    sc = add_asset(store, "a1")
    review(store, "approved", "a1")
    folder = asset_folder(sc.partition, "a1")
    write_decision(store, folder, new_decision("a1", "rejected", sc.sha256, "bo", "no"))
    summary = publish(store, opts(str(shop)))
    assert summary["copied"] == 0 and "decisions say rejected" in summary["skipped"][0]["reason"]
    assert not any(shop.rglob("*.webp"))
    states = cat.read_catalog(store, columns=["asset_id", "review_state"]).to_pylist()
    assert states == [{"asset_id": "a1", "review_state": "rejected"}]  # the catalog is told

    # An original changed after approval is not the image that was approved.
    sc2 = add_asset(store, "a2")
    review(store, "approved", "a2")
    store.write_bytes(f"{asset_folder(sc2.partition, 'a2')}/original.png", png((1, 2, 3)))
    changed = publish(store, opts(str(shop)))
    assert changed["copied"] == 0
    assert "no longer has the bytes that were approved" in changed["skipped"][0]["reason"]


def test_published_copies_keep_their_c2pa_credentials(store: AssetStore, shop: Path) -> None:
    pki = shared_pki()
    leaf = pki.assetgen()
    material = SigningMaterial(cert_chain=leaf.chain, alg=leaf.alg, private_key=leaf.key)
    add_asset(store, "a1", material=material)
    review(store, "approved", "a1")
    publish(store, opts(str(shop), originals=True))
    for name, mime in (
        ("thumb.webp", "image/webp"),
        ("card.jpg", "image/jpeg"),
        ("original.png", "image/png"),
    ):
        data = (shop / "campaign=spring/sku-a1" / name).read_bytes()
        found = read_credentials(data, mime, trust_anchors=pki.root)
        assert found.validation_state == "Trusted", (name, found.errors)
        assert found.digital_source_type.endswith("trainedAlgorithmicMedia")
        if name != "original.png":
            assert found.parent is not None and found.parent.validation_state == "Trusted"
    assert {x["rendition"] for x in feed(shop)} == {"thumb", "card", "original"}
    original = next(x for x in feed(shop) if x["rendition"] == "original")
    assert (original["width"], original["height"], original["content_type"]) == (
        64,
        64,
        "image/png",
    )


def test_publish_to_s3_sets_content_type_and_cache_control(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = AssetStore(f"{s3_bucket}/store")
    add_asset(store, "a1")
    review(store, "approved", "a1")
    to = f"{s3_bucket}/shop"
    summary = publish(store, opts(to, cache_control="public, max-age=600"))
    assert summary["copied"] == 2
    fs = fsspec.filesystem("s3")
    heads = {}
    for key, mime in (
        ("campaign=spring/sku-a1/thumb.webp", "image/webp"),
        ("campaign=spring/sku-a1/card.jpg", "image/jpeg"),
    ):
        bucket, path = f"{to}/{key}"[5:].split("/", 1)
        head = fs.call_s3("head_object", Bucket=bucket, Key=path)
        heads[key] = head
        assert (head["ContentType"], head["CacheControl"]) == (mime, "public, max-age=600")
        assert fs.cat_file(f"{to}/{key}") == store.read_bytes(
            f"{asset_folder({'campaign': 'spring'}, 'a1')}/{key.rsplit('/', 1)[-1]}"
        )
    bucket, path = f"{to}/feed.jsonl"[5:].split("/", 1)
    feed_head = fs.call_s3("head_object", Bucket=bucket, Key=path)
    assert feed_head["ContentType"].startswith("application/x-ndjson")
    assert feed_head["CacheControl"] == "no-cache"
    lines = [json.loads(x) for x in fs.cat_file(f"{to}/feed.jsonl").splitlines()]
    assert sorted(x["key"] for x in lines) == sorted(heads)
    assert all(x["url"] == f"{to}/{x['key']}" for x in lines)  # no --base-url: the destination

    hashed: list[int] = []
    real_hash = sources_module.sha256_of
    monkeypatch.setattr(sources_module, "sha256_of", lambda d: hashed.append(1) or real_hash(d))
    assert publish(store, opts(to, cache_control="public, max-age=600"))["copied"] == 0
    assert hashed == []  # S3's ETags say the store's files are as they were
    # A new Cache-Control is a new copy: the old header is on the objects.
    assert publish(store, opts(to, cache_control="public, max-age=60"))["repaired"] == 2
    head = fs.call_s3(
        "head_object",
        Bucket=bucket,
        Key=path.replace("feed.jsonl", "campaign=spring/sku-a1/card.jpg"),
    )
    assert head["CacheControl"] == "public, max-age=60"


def test_the_command_line_refuses_with_exit_code_2_and_dry_runs_write_nothing(
    store: AssetStore, shop: Path, tmp_path: Path
) -> None:
    add_asset(store, "a1", row_id="../x")
    add_asset(store, "a2")
    review(store, "approved", "a1", "a2")
    app = typer.Typer()
    app.command()(publish_command)

    def cli(*args: str) -> Result:
        return CliRunner().invoke(app, ["--store", store.url, *args], env={"COLUMNS": "200"})

    refused = cli("--to", str(shop), "--json")
    assert refused.exit_code == 2
    assert "asset a1" in json.loads(refused.stdout.splitlines()[0])["error"]
    assert not shop.exists()
    bad = cli("--to", str(shop), "--layout", "../{row_id}")
    assert bad.exit_code == 2 and "'..'" in bad.stderr
    assert cli("--layout", "{row_id}/{rendition}.{ext}").exit_code == 2  # no --to, no publish.to

    dry = cli("--to", str(shop), "--where", "row_id=sku-a2", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would copy 2 files" in dry.stdout and "campaign=spring/sku-a2/thumb.webp" in dry.stdout
    assert not shop.exists() and read_records(store) == []
    missing = cli(
        "--to",
        str(shop),
        "--where",
        "row_id=sku-a2",
        "--renditions",
        "thumb,zoom",
        "--dry-run",
        "--json",
    )
    assert missing.exit_code == 1
    assert "no rendition zoom" in json.loads(missing.stdout)["skipped"][0]["reason"]


def test_a_failed_write_is_reported_and_the_next_publish_finishes_it(
    store: AssetStore, shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_asset(store, "a1")
    review(store, "approved", "a1")
    real = copy_module.write_whole

    def flaky(fs: Any, path: str, *args: Any) -> None:
        if path.endswith("card.jpg"):
            raise OSError("connection reset")
        real(fs, path, *args)

    monkeypatch.setattr("assetgen.tasks.publish.run.write_whole", flaky)
    cut = publish(store, opts(str(shop)))
    assert len(cut["errors"]) == 1 and "card.jpg" in cut["errors"][0]
    assert [x["rendition"] for x in feed(shop)] == ["thumb"]  # the feed lists what is there
    manifest = json.loads((shop / MANIFEST).read_text())
    assert list(manifest["pending"]) == ["campaign=spring/sku-a1/card.jpg"]

    monkeypatch.setattr("assetgen.tasks.publish.run.write_whole", real)
    done = publish(store, opts(str(shop)))
    assert (done["copied"], done["errors"]) == (1, [])
    assert sorted(x["rendition"] for x in feed(shop)) == ["card", "thumb"]
    assert json.loads((shop / MANIFEST).read_text())["pending"] == {}

    with pytest.raises(PublishRefused, match="inside the store"):
        publish(store, opts(f"{store.url}/public"))


def test_flags_go_over_the_config_section(tmp_path: Path) -> None:
    cfg = PublishConfig.model_validate(
        {"to": str(tmp_path / "cfg-shop"), "layout": "{row_id}-{rendition}.{ext}", "prune": True}
    )
    built = PublishOptions.build(cfg, layout=None, renditions=["card"], prune=False)
    assert (built.to, built.layout, built.renditions, built.prune) == (
        str(tmp_path / "cfg-shop"),
        "{row_id}-{rendition}.{ext}",
        ["card"],
        False,
    )
    with pytest.raises(ValueError, match="no destination"):
        PublishOptions.build(PublishConfig())


def test_the_job_config_publish_section_reaches_the_publish(
    store: AssetStore, tmp_path: Path
) -> None:
    add_asset(store, "a1")
    review(store, "approved", "a1")
    job = tmp_path / "job.yaml"
    shop = tmp_path / "cfg-shop"
    job.write_text(
        f"store: {store.url}\npublish: {{to: {shop}, layout: '{{row_id}}-{{rendition}}.{{ext}}', "
        "renditions: [card]}\n"
    )
    app = typer.Typer()
    app.command()(publish_command)
    done = CliRunner().invoke(app, ["--config", str(job), "--dry-run", "--json"])
    assert done.exit_code == 0, done.output
    assert [c["key"] for c in json.loads(done.stdout)["copies"]] == ["sku-a1-card.jpg"]


@pytest.mark.slow
def test_the_flow_and_the_command_publish_under_prefect(
    store: AssetStore, shop: Path, tmp_path: Path, prefect_harness: None
) -> None:
    from assetgen.flows.publish import publish_assets

    add_asset(store, "a1")
    add_asset(store, "a2")
    review(store, "approved", "a1")
    summary = publish_assets(
        to=str(shop), overrides={"store": store.url}, where={"campaign": "spring"}
    )
    assert summary["copied"] == 2 and set(files_under(shop)) == {
        "campaign=spring/sku-a1/thumb.webp",
        "campaign=spring/sku-a1/card.jpg",
    }
    assert publish_assets(to=str(shop), overrides={"store": store.url})["copied"] == 0

    review(store, "approved", "a2")
    app = typer.Typer()
    app.command()(publish_command)
    done = CliRunner().invoke(
        app,
        ["--to", str(shop), "--store", store.url, "--base-url", "https://cdn.example"],
        env={"COLUMNS": "200"},
    )
    assert done.exit_code == 0, done.output
    assert "copied 2 files (2 new, 0 replaced, 0 repaired), 2 unchanged" in done.stdout
    assert "feed: https://cdn.example/feed.csv" in done.stdout
    assert {x["asset_id"] for x in feed(shop)} == {"a1", "a2"}
    assert len(read_records(store)) == 3
