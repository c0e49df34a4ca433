"""The `publish_assets` flow: approved, current versions to stable keys and a feed."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from assetgen.flows.generate import TASK_OPTIONS
from assetgen.tasks.config.job import load_job_config
from assetgen.tasks.publish.run import PublishOptions
from assetgen.tasks.publish.run import publish as _publish
from assetgen.tasks.store.assets import AssetStore

publish_files = task(_publish, name="publish", **TASK_OPTIONS)


@flow(name="publish_assets", log_prints=False)
def publish_assets(
    to: str | None = None,
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
    where: dict[str, str] | None = None,
    layout: str | None = None,
    renditions: list[str] | None = None,
    originals: bool | None = None,
    base_url: str | None = None,
    prune: bool | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Copy the approved, current assets' files to `to` (default: the config's publish.to).

    Arguments left None take the job config's `publish:` section. Returns the summary;
    a refused publish (bad layout, a key leaving the destination, a collision) raises
    before anything is copied.
    """
    cfg = load_job_config(config, overrides)
    opts = PublishOptions.build(
        cfg.publish,
        to=to,
        layout=layout,
        renditions=renditions,
        originals=originals,
        base_url=base_url,
        prune=prune,
        dry_run=dry_run,
        where=list((where or {}).items()),
    )
    store = AssetStore(cfg.store, cfg.store_options)
    summary = publish_files(store, opts)
    create_markdown_artifact(_markdown(summary), key="publish-summary", description="Publish")
    get_run_logger().info(
        "publish %s to %s: %d files copied (%d new, %d replaced), %d unchanged, "
        "%d withdrawn, %d pruned, %d assets skipped",
        summary["run_id"],
        summary["to"],
        summary["copied"],
        summary["new"],
        summary["replaced"],
        summary["unchanged"],
        len(summary["withdrawn"]),
        len(summary["pruned"]),
        len(summary["skipped"]),
    )
    return summary


def _markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"# Publish {summary['run_id']}{' (dry run)' if summary['dry_run'] else ''}",
        f"- to: `{summary['to']}`",
        f"- {summary['copied']} files copied ({summary['new']} new, {summary['replaced']} "
        f"replaced, {summary['repaired']} repaired), {summary['unchanged']} unchanged, "
        f"from {summary['assets']} approved assets",
    ]
    if summary.get("feed"):
        lines.append(f"- feed: {summary['feed']['csv']}, {summary['feed']['jsonl']}")
    for w in summary["withdrawn"][:50]:
        done = "removed" if w["key"] in summary["pruned"] else "still there (--prune removes it)"
        lines.append(f"- withdrawn `{w['key']}` ({w['asset_id']}): {w['reason']}; {done}")
    for s in summary["skipped"][:50]:
        lines.append(f"- skipped {s['asset_id']}: {s['reason']}")
    for e in summary["errors"][:50]:
        lines.append(f"- error: {e}")
    return "\n".join(lines)
