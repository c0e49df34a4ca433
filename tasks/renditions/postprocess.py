"""After an original is stored: renditions in a process pool, then sidecar and catalog.

Runs beside generation, off the dispatch path: the dispatcher only waits
here when renditions fall far behind (a bounded queue, so memory stays flat).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from assetgen.tasks.catalog.rows import row_from_sidecar
from assetgen.tasks.catalog.table import read_matching
from assetgen.tasks.catalog.writer import CatalogWriter
from assetgen.tasks.config.job import JobConfig
from assetgen.tasks.renditions.credentials import SigningMaterial
from assetgen.tasks.renditions.presets import Preset
from assetgen.tasks.renditions.render import Rendered
from assetgen.tasks.renditions.signing import render_and_sign, signing_material
from assetgen.tasks.runtime.lifetime import exit_with_parent
from assetgen.tasks.store.assets import SIDECAR, AssetStore, RenditionInfo, Sidecar


def rendition_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """One worker per core. Spawned, not forked: the parent runs threads (Prefect, SDK)."""
    return ProcessPoolExecutor(
        max_workers=workers or os.cpu_count() or 1,
        mp_context=multiprocessing.get_context("spawn"),
        # A run killed outright must not leave its workers behind.
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    )


def store_renditions(
    store: AssetStore, folder: str, sidecar: Sidecar, rendered: list[Rendered]
) -> Sidecar:
    """Write each rendition whole, then the sidecar that lists them (replacing same names)."""
    infos = []
    for r in rendered:
        if r.error is not None:  # overlays: recorded by the caller, the others stand
            continue
        file = f"{r.name}.{r.extension}"
        store.write_bytes(f"{folder}/{file}", r.data)
        infos.append(
            RenditionInfo(
                name=r.name,
                file=file,
                width=r.width,
                height=r.height,
                format=r.format,
                bytes=len(r.data),
                quality=r.quality,
                note=r.note,
                credentials=r.credentials,
                overlays=r.overlays,
            )
        )
    new = {i.name for i in infos}
    kept = [r for r in sidecar.renditions if r.name not in new]
    updated = sidecar.model_copy(update={"renditions": kept + infos})
    store.write_bytes(f"{folder}/{SIDECAR}", updated.model_dump_json(indent=2).encode("utf-8"))
    return updated


@dataclass
class PostProcessor:
    """Renditions for each stored original, then the catalog row."""

    store: AssetStore
    presets: dict[str, Preset]
    catalog: CatalogWriter
    pool: Executor | None = None
    material: SigningMaterial | None = None  # signs every rendition when given
    max_pending: int = 32
    errors: list[str] = field(default_factory=list)
    _tasks: set[asyncio.Task] = field(default_factory=set)
    _slots: asyncio.Semaphore | None = None

    async def submit(
        self,
        folder: str,
        image: bytes | None,
        sidecar: Sidecar,
        presets: dict[str, Preset] | None = None,
    ) -> None:
        """Queue one original (with `presets`, default all); waits when `max_pending` are queued.

        With no image there is nothing to render: only the catalog row is written.
        """
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_pending)
        await self._slots.acquire()
        chosen = self.presets if presets is None else presets
        task = asyncio.create_task(self._process(folder, image, sidecar, chosen))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(
        self, folder: str, image: bytes | None, sidecar: Sidecar, presets: dict[str, Preset]
    ) -> None:
        try:
            if presets and image is not None:
                loop = asyncio.get_running_loop()
                values = {**sidecar.partition, **sidecar.metadata}
                rendered = await loop.run_in_executor(
                    self.pool,
                    render_and_sign,
                    image,
                    presets,
                    self.material,
                    values,
                    sidecar.row_id,
                )
                for r in rendered:
                    if r.error is not None:
                        self.errors.append(
                            f"{sidecar.asset_id}: rendition {r.name} failed: {r.error}"
                        )
                sidecar = await asyncio.to_thread(
                    store_renditions, self.store, folder, sidecar, rendered
                )
        except Exception as e:
            # The original and its sidecar are safe; `refresh` can redo this.
            self.errors.append(f"{sidecar.asset_id}: renditions failed: {type(e).__name__}: {e}")
        finally:
            assert self._slots is not None
            self._slots.release()
        await asyncio.to_thread(self.catalog.add, row_from_sidecar(self.store, sidecar))

    async def drain(self) -> None:
        """Wait for everything queued."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))


def refresh_assets(
    store: AssetStore,
    presets: dict[str, Preset],
    folders: list[str],
    run_id: str,
    workers: int | None = None,
    missing_only: bool = False,
    material: SigningMaterial | None = None,
    metadata: dict[str, dict[str, Any]] | None = None,
) -> tuple[int, list[str]]:
    """Render `presets` for the assets in `folders` from their stored originals.

    With `missing_only`, only presets an asset does not have yet; with
    `material`, every rendition is signed again; `metadata` (folder -> columns)
    replaces an asset's manifest columns first, so its overlays draw the new
    text and its sidecar and catalog row record it (refresh --manifest). No
    provider is involved: nothing is paid. Returns (assets done, errors).
    """
    return asyncio.run(
        _refresh(store, presets, folders, run_id, workers, missing_only, material, metadata or {})
    )


async def _refresh(
    store: AssetStore,
    presets: dict[str, Preset],
    folders: list[str],
    run_id: str,
    workers: int | None,
    missing_only: bool,
    material: SigningMaterial | None,
    metadata: dict[str, dict[str, Any]],
) -> tuple[int, list[str]]:
    catalog = CatalogWriter(store, run_id)
    unreadable: list[str] = []
    with rendition_pool(workers) as pool:
        post = PostProcessor(store, presets, catalog, pool, material)
        for folder in folders:
            try:
                raw = await asyncio.to_thread(store.read_bytes, f"{folder}/{SIDECAR}")
                sidecar = Sidecar.model_validate_json(raw)
                if folder in metadata:
                    sidecar = sidecar.model_copy(update={"metadata": metadata[folder]})
                chosen = presets
                if missing_only:
                    have = {r.name for r in sidecar.renditions}
                    chosen = {k: v for k, v in presets.items() if k not in have}
                image = None
                if chosen:
                    image = await asyncio.to_thread(
                        store.read_bytes, f"{folder}/{sidecar.original}"
                    )
            except (OSError, ValueError) as e:
                # One unreadable asset is reported; the others are refreshed all the same.
                unreadable.append(f"{folder}: unreadable: {type(e).__name__}: {e}")
                continue
            await post.submit(folder, image, sidecar, chosen)
        await post.drain()
    await asyncio.to_thread(catalog.flush)
    errors = unreadable + post.errors
    return len(folders) - len(errors), errors


def incomplete(store: AssetStore, presets: dict[str, Preset], folders: dict[str, str]) -> list[str]:
    """Folders of stored assets the catalog lacks, or lists without one of `presets`.

    What a run killed between storing an original and cataloguing it leaves.
    """
    # Only these assets' rows: a rerun into a big catalog skips many assets,
    # but rarely all of it.
    table = read_matching(store, {"asset_id": folders})
    listed = {
        asset_id: {r["name"] for r in renditions or []}
        for asset_id, renditions in zip(
            table["asset_id"].to_pylist(), table["renditions"].to_pylist(), strict=True
        )
    }
    wanted = set(presets)
    return [
        folder
        for asset_id, folder in folders.items()
        if asset_id not in listed or not wanted <= listed[asset_id]
    ]


def complete_stored(store: AssetStore, cfg: JobConfig, skipped: dict[str, str], run_id: str) -> int:
    """Renditions and catalog rows that a killed run left undone for stored assets; how many."""
    presets = {name: cfg.presets[name] for name in cfg.renditions}
    folders = incomplete(store, presets, skipped)
    if folders:
        material = signing_material(cfg)
        refresh_assets(store, presets, folders, run_id, cfg.render_workers, True, material)
    return len(folders)
