"""The catalog's rows: one per asset, built from a sidecar or from a job that made no image."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from assetgen.tasks.review.decisions import Decision, current_state
from assetgen.tasks.store.assets import AssetStore, Sidecar, asset_folder, now_utc

if TYPE_CHECKING:  # reading the catalog needs no dispatcher
    from assetgen.tasks.generation.dispatch import JobOutcome

RENDITION = pa.struct(
    [
        ("name", pa.string()),
        ("uri", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("format", pa.string()),
        ("bytes", pa.int64()),
    ]
)
SCHEMA = pa.schema(
    [
        ("asset_id", pa.string()),
        ("row_id", pa.string()),
        ("row", pa.int64()),
        ("variant", pa.int32()),
        ("partition", pa.map_(pa.string(), pa.string())),
        ("status", pa.string()),
        ("error", pa.string()),
        ("model", pa.string()),
        ("prompt", pa.string()),
        ("revised_prompt", pa.string()),
        ("size", pa.string()),
        ("quality", pa.string()),
        ("output_format", pa.string()),
        ("background", pa.string()),
        ("moderation", pa.string()),
        ("attempts", pa.int32()),
        ("latency_s", pa.float64()),
        ("text_input_tokens", pa.int64()),
        ("image_input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("text_output_tokens", pa.int64()),
        ("cost_usd", pa.float64()),
        ("run_id", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        # When the commit that recorded this row began (table.commit sets it): in the
        # order of the commits, so a file's range of it tells a MERGE which files to read.
        ("recorded_at", pa.timestamp("us", tz="UTC")),
        ("original_uri", pa.string()),
        ("original_bytes", pa.int64()),
        ("original_sha256", pa.string()),
        ("renditions", pa.list_(RENDITION)),
        # The original's C2PA manifest as it arrived: its validation state
        # ("absent" without one), claim generator, signer, digital source type.
        ("c2pa_state", pa.string()),
        ("c2pa_generator", pa.string()),
        ("c2pa_signer", pa.string()),
        ("c2pa_source_type", pa.string()),
        # Whether the renditions carry our signed manifests: signed, unsigned, mixed.
        ("rendition_credentials", pa.string()),
        ("metadata", pa.string()),  # JSON: columns differ from manifest to manifest
        # The current asset of the same slot, on an older generated version; else null.
        ("superseded_by", pa.string()),
        # On a new current asset: the older versions of its slot it took over whose
        # superseded_by is not set yet. A checkpoint commit records it instead of
        # rewriting the files of those versions; the writer's last commit sets their
        # superseded_by and clears it (table.settle). Readers apply what is left.
        ("supersedes", pa.list_(pa.string())),
        # Review (tasks/review): pending, approved or rejected; null for rows without an
        # image. Kept by every commit that is not a decision (tasks/review/record.py).
        ("review_state", pa.string()),
        ("review_note", pa.string()),
        ("reviewed_by", pa.string()),
        ("reviewed_at", pa.timestamp("us", tz="UTC")),
        # Revise (tasks/revise): 0 for a first version; the rejected asset it answers.
        ("revision", pa.int32()),
        ("revision_of", pa.string()),
        ("revision_note", pa.string()),
        # Publish (tasks/publish): where the asset's files went last, and when.
        ("published_uri", pa.string()),
        ("published_at", pa.timestamp("us", tz="UTC")),
        # Overlays (tasks/renditions/overlays.py): JSON, rendition name -> what its layers
        # drew (text, fitted size, logo sha256...); null when none has overlays. Top-level,
        # not in RENDITION: a table of an earlier assetgen gains a column, not a new struct.
        ("overlays", pa.string()),
        # A row's own asset over another row's picture: the asset that paid for it.
        ("shares", pa.string()),
    ]
)
SUPERSEDED_BY = "superseded_by"
SUPERSEDES = "supersedes"
REVIEW_COLUMNS = ("review_state", "review_note", "reviewed_by", "reviewed_at")
PUBLISH_COLUMNS = ("published_uri", "published_at")
# Set by their own commits (table.update_columns), kept when a run records an asset again.
KEPT_COLUMNS = (*REVIEW_COLUMNS, *PUBLISH_COLUMNS)
PARTITION_COLUMNS = {"partition"}
# A slot is (partition, row_id, variant): what decides which asset is current.
SLOT_COLUMNS = ("asset_id", "partition", "row_id", "variant", "status", "created_at", "recorded_at")
GENERATED = "generated"


def row_from_sidecar(
    store: AssetStore, sidecar: Sidecar, decisions: list[Decision] | None = None
) -> dict[str, Any]:
    """The catalog row of a stored asset, its review state from `decisions` (none: new)."""
    folder = asset_folder(sidecar.partition, sidecar.asset_id)
    review = current_state(decisions or [], sidecar.sha256, lambda: sidecar.review)
    return {
        "asset_id": sidecar.asset_id,
        "row_id": sidecar.row_id,
        "row": sidecar.row,
        "variant": sidecar.variant,
        "partition": sidecar.partition,
        "status": "generated",
        "error": None,
        "model": sidecar.model,
        "prompt": sidecar.prompt,
        "revised_prompt": sidecar.revised_prompt,
        "size": sidecar.params.get("size"),
        "quality": sidecar.params.get("quality"),
        "output_format": sidecar.params.get("output_format"),
        "background": sidecar.params.get("background"),
        "moderation": sidecar.params.get("moderation"),
        "attempts": sidecar.attempts,
        "latency_s": sidecar.latency_s,
        "text_input_tokens": sidecar.usage.text_input_tokens,
        "image_input_tokens": sidecar.usage.image_input_tokens,
        "output_tokens": sidecar.usage.output_tokens,
        "text_output_tokens": sidecar.usage.text_output_tokens,
        "cost_usd": sidecar.cost_usd,
        "run_id": sidecar.run_id,
        "created_at": sidecar.created_at,
        "recorded_at": now_utc(),
        "original_uri": store.uri(f"{folder}/{sidecar.original}"),
        "original_bytes": sidecar.bytes,
        "original_sha256": sidecar.sha256,
        "renditions": [
            {
                "name": r.name,
                "uri": store.uri(f"{folder}/{r.file}"),
                "width": r.width,
                "height": r.height,
                "format": r.format,
                "bytes": r.bytes,
            }
            for r in sidecar.renditions
        ],
        **_credential_columns(sidecar),
        "metadata": json.dumps(sidecar.metadata, default=str),
        **review.model_dump(),
        "revision": sidecar.revision,
        "revision_of": sidecar.revision_of,
        "revision_note": sidecar.revision_note,
        "overlays": _overlays_column(sidecar),
        "shares": sidecar.shares,
    }


def _overlays_column(sidecar: Sidecar) -> str | None:
    drawn = {r.name: r.overlays for r in sidecar.renditions if r.overlays}
    return json.dumps(drawn, ensure_ascii=False, default=str) if drawn else None


def _credential_columns(sidecar: Sidecar) -> dict[str, Any]:
    found = sidecar.credentials
    states = {r.credentials or "unsigned" for r in sidecar.renditions}
    renditions = None if not states else states.pop() if len(states) == 1 else "mixed"
    return {
        "c2pa_state": None if found is None else found.get("validation_state") or "absent",
        "c2pa_generator": (found or {}).get("claim_generator"),
        "c2pa_signer": (found or {}).get("signer"),
        "c2pa_source_type": (found or {}).get("digital_source_type"),
        "rendition_credentials": renditions,
    }


def row_from_outcome(outcome: JobOutcome, run_id: str) -> dict[str, Any]:
    """The catalog row of a job that has no image: failed, left for budget, not sent."""
    job = outcome.job
    now = now_utc()
    return {
        "asset_id": job.asset_id,
        "row_id": job.row_id,
        "row": job.row,
        "variant": job.variant,
        "partition": job.partition,
        "status": outcome.status,
        "error": outcome.reason,
        "model": job.model,
        "prompt": job.prompt,
        "size": job.size,
        "quality": job.quality,
        "output_format": job.output_format,
        "background": job.background,
        "moderation": job.moderation,
        "attempts": outcome.attempts,
        "cost_usd": outcome.cost_usd,
        "run_id": run_id,
        "created_at": now,
        "recorded_at": now,
        "renditions": [],
        "metadata": json.dumps(job.metadata, default=str),
    }


def superseded(table: pa.Table) -> pa.Array:
    """Per row of `table`: the current asset of its slot when the row is an older generated
    version, else null. A slot's current asset is its newest generated one by created_at
    (ties: recorded_at, then asset_id)."""
    keys = _slot_keys(table)
    generated = pc.fill_null(pc.equal(table["status"], GENERATED), False).to_pylist()
    created = table["created_at"].to_pylist()
    recorded = table["recorded_at"].to_pylist()
    ids = table["asset_id"].to_pylist()
    newest: dict[str, tuple[Any, Any, str]] = {}
    for key, gen, c, r, asset in zip(keys, generated, created, recorded, ids, strict=True):
        if gen:
            rank = (c, r or c, asset)
            if key not in newest or rank > newest[key]:
                newest[key] = rank
    return pa.array(
        [
            newest[key][2] if gen and newest[key][2] != asset else None
            for key, gen, asset in zip(keys, generated, ids, strict=True)
        ],
        pa.string(),
    )


def _slot_keys(table: pa.Table) -> list[str]:
    parts = table["partition"].to_pylist()
    rows = table["row_id"].to_pylist()
    variants = table["variant"].to_pylist()
    return [
        f"{sorted(p or [])!r}\x1f{r}\x1f{v}" for p, r, v in zip(parts, rows, variants, strict=True)
    ]


def with_superseded(table: pa.Table) -> pa.Table:
    """`table` (one row per asset) with superseded_by worked out among its own rows."""
    index = table.schema.get_field_index(SUPERSEDED_BY)
    return table.set_column(index, SUPERSEDED_BY, superseded(table))
