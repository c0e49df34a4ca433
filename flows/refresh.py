"""The `refresh_renditions` flow: new or changed presets over stored originals, no API calls."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from assetgen.flows.generate import TASK_OPTIONS
from assetgen.tasks.catalog.table import query
from assetgen.tasks.config.job import ConfigError, JobConfig, load_job_config
from assetgen.tasks.renditions.postprocess import refresh_assets
from assetgen.tasks.renditions.signing import signing_material
from assetgen.tasks.store.assets import AssetStore, asset_folder, now_utc
from assetgen.tasks.store.runs import new_run_id


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


@task(name="render", **TASK_OPTIONS)
def render_selected(
    store: AssetStore, presets: dict[str, Any], folders: list[str], run_id: str, cfg: JobConfig
) -> tuple[int, list[str]]:
    """Renditions for every selected asset, written beside its original (signed, if set)."""
    material = signing_material(cfg)
    return refresh_assets(store, presets, folders, run_id, cfg.render_workers, False, material)


@flow(name="refresh_renditions")
def refresh_renditions(
    presets: list[str] | None = None,
    store: str | None = None,
    config: str | None = None,
    where: list[tuple[str, str]] | None = None,
    versions: bool = False,
) -> dict[str, Any]:
    """Re-render `presets` (default: the config's renditions) for the selected assets.

    Current assets only, unless `versions`: a superseded version is history.
    """
    cfg = load_job_config(config, {"store": store})
    names = presets or cfg.renditions
    unknown = [n for n in names if n not in cfg.presets]
    if unknown:
        raise ConfigError(f"unknown presets {unknown}; known: {sorted(cfg.presets)}")
    chosen = {n: cfg.presets[n] for n in names}
    asset_store = AssetStore(cfg.store, cfg.store_options)
    run_id = new_run_id(now_utc())
    folders = select_assets(asset_store, list(where or []), versions)
    done, errors = render_selected(asset_store, chosen, folders, run_id, cfg)
    summary = {
        "run_id": run_id,
        "store": cfg.store,
        "presets": names,
        "selected": len(folders),
        "refreshed": done,
        "errors": errors[:20],
    }
    create_markdown_artifact(
        f"# Refresh {run_id}\n- presets: {', '.join(names)}\n- {done} of {len(folders)} assets "
        f"re-rendered, {len(errors)} errors, no API calls",
        key="refresh-summary",
    )
    get_run_logger().info("refreshed %d of %d assets with %s", done, len(folders), names)
    return summary
