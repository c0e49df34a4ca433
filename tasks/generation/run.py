"""One generation run: provider, limiter, budget and store wired around the dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from PIL import Image

from assetgen.tasks.budget.claims import Caps, Heartbeat, LedgerAccount
from assetgen.tasks.budget.ledger import Kind
from assetgen.tasks.budget.reservations import Budget
from assetgen.tasks.catalog.rows import row_from_outcome
from assetgen.tasks.catalog.writer import CatalogWriter
from assetgen.tasks.config.job import JobConfig
from assetgen.tasks.generation.dispatch import Attempted, Dispatcher, JobOutcome, RetryPolicy
from assetgen.tasks.generation.limiter import RateLimiter
from assetgen.tasks.generation.placeholder import PlaceholderProvider
from assetgen.tasks.generation.providers import Provider
from assetgen.tasks.plan.jobs import Job
from assetgen.tasks.plan.pricing import PriceTable
from assetgen.tasks.renditions.credentials import mime_of, read_credentials
from assetgen.tasks.renditions.postprocess import PostProcessor, rendition_pool
from assetgen.tasks.renditions.signing import credentials_note, signing_material
from assetgen.tasks.store.assets import EXTENSIONS, AssetStore, Sidecar, now_utc


@dataclass
class GenerationReport:
    """What a run did, for the summary and the artifacts."""

    outcomes: list[JobOutcome]
    requests_sent: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    stop_reason: str | None = None
    spent_usd: float = 0.0
    uncertain_usd: float = 0.0
    cap_usd: float | None = None
    period: dict[str, Any] | None = None
    rate_limit_pauses: int = 0
    rendition_errors: list[str] = field(default_factory=list)
    provenance: str = ""  # what the renditions carry (signing.credentials_note)
    interrupted: bool = False
    catalog_rows: int = 0
    seconds: float = 0.0


def make_provider(cfg: JobConfig, prices: PriceTable) -> Provider:
    """The provider the config names."""
    if cfg.provider == "openai":
        from assetgen.tasks.generation.openai_images import OpenAIProvider

        return OpenAIProvider(timeout_s=cfg.limits.timeout_s)
    return PlaceholderProvider(prices)


def open_account(
    cfg: JobConfig,
    store: AssetStore,
    run_id: str,
    started_at: datetime,
    kind: Kind = "run",
    group: str | None = None,
) -> LedgerAccount:
    """The run's account in the store's ledger, under the config's caps."""
    return LedgerAccount(store, run_id, kind, started_at, Caps.from_config(cfg.budget), group)


def period_figures(account: LedgerAccount, before: float | None) -> dict[str, Any] | None:
    """The period cap, what the period had spent before the run, and what is left after it."""
    caps = account.caps
    if caps.period is None or before is None:
        return None
    after = account.period_total()
    assert after is not None
    left = (caps.period_usd or 0.0) - after - account.claimed
    day = account.template.day
    return {
        "period": caps.period,
        "key": day if caps.period == "day" else day[:7],
        "cap_usd": caps.period_usd,
        "spent_before_usd": round(before, 6),
        "left_after_usd": round(max(0.0, left), 6),
    }


def build_sidecar(job: Job, done: Attempted, run_id: str, provider: str) -> Sidecar:
    """The sidecar of a freshly generated image, with what its C2PA manifest says (if any)."""
    result = done.result
    with Image.open(io.BytesIO(result.image)) as img:
        width, height = img.size
        mime = mime_of(img.format or result.output_format)
    created_at = now_utc()
    if job.created_after is not None and created_at <= job.created_after:
        # A revision is newer than what it revises, whatever this clock says.
        created_at = job.created_after + timedelta(microseconds=1)
    return Sidecar(
        asset_id=job.asset_id,
        run_id=run_id,
        created_at=created_at,
        row=job.row,
        row_id=job.row_id,
        variant=job.variant,
        partition=job.partition,
        metadata=job.metadata,
        provider=provider,
        model=job.model,
        prompt=job.prompt,
        revised_prompt=result.revised_prompt,
        params=job.params,
        references=[r.model_dump() for r in job.references]
        + ([{**job.mask.model_dump(), "mask": True}] if job.mask else []),
        original=f"original.{EXTENSIONS.get(result.output_format, result.output_format)}",
        width=width,
        height=height,
        bytes=len(result.image),
        sha256=hashlib.sha256(result.image).hexdigest(),
        returned={
            "size": result.size,
            "quality": result.quality,
            "output_format": result.output_format,
            "background": result.background,
        },
        usage=result.usage,
        cost_usd=done.cost_usd,
        request_id=result.request_id,
        latency_s=round(done.latency_s, 3),
        attempts=done.attempts,
        credentials=read_credentials(result.image, mime).model_dump(),
        review=job.review,
        revision=job.revision,
        revision_of=job.revision_of,
        revision_note=job.revision_note,
    )


def stop_on_signals(dispatcher: Dispatcher) -> threading.Event:
    """SIGINT/SIGTERM: send nothing more, let in-flight requests finish and be stored.

    A second signal falls through to the default (Ctrl-C raises at once).
    Only the main thread can take signals; elsewhere this does nothing.
    """
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        return interrupted
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        interrupted.set()
        dispatcher.stop(f"interrupted by {sig.name}")
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(s)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    return interrupted


def generate(*args: Any, **kwargs: Any) -> GenerationReport:
    """Generate every job, writing each image to the store as it arrives (see generate_async)."""
    return asyncio.run(generate_async(*args, **kwargs))


async def generate_async(
    jobs: list[Job],
    cfg: JobConfig,
    store: AssetStore,
    run_id: str,
    started_at: datetime,
    prices: PriceTable,
    provider: Provider | None = None,
    on_outcome: Callable[[JobOutcome], None] | None = None,
    account: LedgerAccount | None = None,
) -> GenerationReport:
    """Send every job through the provider within the limiter and the budget.

    Money comes from `account` (default: this run's own account in the
    store's ledger), claimed in blocks as requests go out.
    """
    started = time.monotonic()
    material = signing_material(cfg)  # bad signing material stops the run before any spend
    account = account or open_account(cfg, store, run_id, started_at)
    before = await asyncio.to_thread(account.period_total)
    budget = Budget(cfg.budget.cap_usd, prices, account)
    limits = cfg.limits
    limiter = RateLimiter(min(limits.ipm, limits.rpm or limits.ipm))
    provider = provider or make_provider(cfg, prices)
    catalog = CatalogWriter(store, run_id)
    presets = {name: cfg.presets[name] for name in cfg.renditions}
    pool = rendition_pool(cfg.render_workers) if presets else None
    post = PostProcessor(store, presets, catalog, pool, material)

    async def write(job: Job, done: Attempted) -> str:
        # Reading the image's C2PA manifest is CPU work: off the dispatch loop.
        sidecar = await asyncio.to_thread(build_sidecar, job, done, run_id, provider.name)
        folder = store.asset_dir(job)
        uri = await asyncio.to_thread(
            store.write_asset, folder, sidecar.original, done.result.image, sidecar
        )
        await post.submit(folder, done.result.image, sidecar)
        return uri

    catalog_rows: list[dict[str, Any]] = []

    def outcome(o: JobOutcome) -> None:
        if o.status != "generated":
            catalog_rows.append(row_from_outcome(o, run_id))
        if on_outcome:
            on_outcome(o)

    dispatcher = Dispatcher(
        provider=provider,
        limiter=limiter,
        budget=budget,
        prices=prices,
        write=write,
        retry=RetryPolicy(limits.max_attempts, limits.backoff_base_s, limits.backoff_max_s),
        concurrency=limits.concurrency,
        on_outcome=outcome,
    )

    interrupted = stop_on_signals(dispatcher)
    try:
        with Heartbeat(account, lambda: budget.spent) if jobs else contextlib.nullcontext():
            outcomes = await dispatcher.run(jobs)
    finally:
        await provider.aclose()
        # What was claimed and not spent goes back; what was spent stays.
        await asyncio.to_thread(account.close, budget.spent)
        await post.drain()
        if pool is not None:
            pool.shutdown()
        for row in catalog_rows:
            catalog.add(row)
        await asyncio.to_thread(catalog.flush)
    period = await asyncio.to_thread(period_figures, account, before)
    return GenerationReport(
        outcomes=outcomes,
        requests_sent=dispatcher.requests_sent,
        errors=dispatcher.errors,
        stop_reason=dispatcher.stop_reason,
        spent_usd=budget.spent,
        uncertain_usd=budget.uncertain,
        cap_usd=cfg.budget.cap_usd,
        period=period,
        rate_limit_pauses=limiter.pauses,
        # A failed catalog commit loses nothing of the store (rebuild) but is worth knowing.
        rendition_errors=post.errors + [f"catalog commit: {e}" for e in catalog.errors],
        provenance=credentials_note(material),
        interrupted=interrupted.is_set(),
        catalog_rows=catalog.rows_written,
        seconds=time.monotonic() - started,
    )
