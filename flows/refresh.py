"""The `refresh_renditions` flow: new or changed presets over stored originals, no API calls.

With a manifest (`refresh --manifest`), the assets its rows match by row id
take the rows' new columns: their overlay renditions are drawn again with the
new text (a price, a headline) over the same picture.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from assetgen.flows.generate import TASK_OPTIONS
from assetgen.tasks.catalog.table import query
from assetgen.tasks.config.job import ConfigError, JobConfig, load_job_config
from assetgen.tasks.renditions.postprocess import refresh_assets
from assetgen.tasks.renditions.retext import Retext, describe_reject, match_rows, plan_rows
from assetgen.tasks.renditions.signing import signing_material
from assetgen.tasks.store.assets import AssetStore, asset_folder, now_utc
from assetgen.tasks.store.runs import new_run_id, run_file

# Lines of each list the summary carries (the counts are whole).
SHOWN = 20


@task(name="select-assets", **TASK_OPTIONS)
def select_assets(store: AssetStore, where: list[tuple[str, str]], versions: bool) -> list[str]:
    """Folders of the generated assets matching `where`; superseded ones only with `versions`."""
    columns = ["asset_id", "partition"]
    table = query(store, where, "generated", columns=columns, current_only=not versions)
    return [
        asset_folder(dict(part or []), asset_id)
        for asset_id, part in zip(
            table["asset_id"].to_pylist(), table["partition"].to_pylist(), strict=True
        )
    ]


@task(name="match-manifest", **TASK_OPTIONS)
def match_manifest(
    store: AssetStore, manifest: str, fmt: str | None, cfg: JobConfig, run_id: str
) -> Retext:
    """The stored assets the manifest's rows match by row id, with their new columns."""
    rejects_url = store.uri(run_file(run_id, "rejects.csv"))
    jobs, rejected = plan_rows(manifest, fmt, cfg, rejects_url)
    found = match_rows(store, jobs)
    found.rejected = rejected
    return found


@task(name="render", **TASK_OPTIONS)
def render_selected(
    store: AssetStore,
    presets: dict[str, Any],
    folders: list[str],
    run_id: str,
    cfg: JobConfig,
    metadata: dict[str, dict[str, Any]] | None = None,
) -> tuple[int, list[str]]:
    """Renditions for every selected asset, written beside its original (signed, if set)."""
    material = signing_material(cfg)
    return refresh_assets(
        store, presets, folders, run_id, cfg.render_workers, False, material, metadata
    )


def overlay_presets(cfg: JobConfig) -> list[str]:
    """The config's renditions that draw overlays: what a new manifest can change."""
    return [n for n in cfg.renditions if cfg.presets[n].overlays]


@flow(name="refresh_renditions")
def refresh_renditions(
    presets: list[str] | None = None,
    store: str | None = None,
    config: str | None = None,
    where: list[tuple[str, str]] | None = None,
    versions: bool = False,
    manifest: str | None = None,
    fmt: str | None = None,
) -> dict[str, Any]:
    """Re-render `presets` (default: the config's renditions) for the selected assets.

    Current assets only, unless `versions`: a superseded version is history.
    With `manifest`: the current assets its rows match by row id, with the
    rows' columns, and by default only the presets that draw overlays.
    """
    cfg = load_job_config(config, {"store": store})
    if manifest is not None and (where or versions):
        raise ConfigError("--manifest selects the assets by row id: it takes no --where/--versions")
    names = presets or (overlay_presets(cfg) if manifest is not None else cfg.renditions)
    if not names:
        raise ConfigError(
            f"none of the config's renditions ({', '.join(cfg.renditions) or 'none'}) draws "
            "overlays: name the presets to re-render with --preset"
        )
    unknown = [n for n in names if n not in cfg.presets]
    if unknown:
        raise ConfigError(f"unknown presets {unknown}; known: {sorted(cfg.presets)}")
    chosen = {n: cfg.presets[n] for n in names}
    asset_store = AssetStore(cfg.store, cfg.store_options)
    run_id = new_run_id(now_utc())
    found: Retext | None = None
    if manifest is not None:
        found = match_manifest(asset_store, manifest, fmt, cfg, run_id)
        folders = list(found.folders)
    else:
        folders = select_assets(asset_store, list(where or []), versions)
    metadata = found.folders if found is not None else None
    done, errors = render_selected(asset_store, chosen, folders, run_id, cfg, metadata)
    summary: dict[str, Any] = {
        "run_id": run_id,
        "store": cfg.store,
        "presets": names,
        "selected": len(folders),
        "refreshed": done,
        "errors": errors[:SHOWN],
    }
    lines = [f"- presets: {', '.join(names)}"]
    if found is not None:
        summary |= _manifest_summary(manifest, found, asset_store.uri(run_file(run_id, "")))
        lines.append(
            f"- manifest {manifest}: {found.rows} valid rows, {len(folders)} matched, "
            f"{len(found.unmatched)} with no stored asset, {len(found.needs_run)} need `run`, "
            f"{len({r.row for r in found.rejected})} rejected"
        )
    lines.append(
        f"- {done} of {len(folders)} assets re-rendered, {len(errors)} errors, no API calls"
    )
    create_markdown_artifact(f"# Refresh {run_id}\n" + "\n".join(lines), key="refresh-summary")
    get_run_logger().info("refreshed %d of %d assets with %s", done, len(folders), names)
    return summary


def _manifest_summary(manifest: str, found: Retext, run_dir: str) -> dict[str, Any]:
    return {
        "manifest": manifest,
        "rows": found.rows,
        "matched": len(found.folders),
        "unmatched": len(found.unmatched),
        "unmatched_rows": found.unmatched[:SHOWN],
        "needs_run": len(found.needs_run),
        "needs_run_rows": found.needs_run[:SHOWN],
        "rejected": len({r.row for r in found.rejected}),
        "rejected_rows": [describe_reject(r) for r in found.rejected[:SHOWN]],
        "rejects": f"{run_dir}rejects.csv",
    }
