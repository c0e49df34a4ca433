"""Collect finished batches: stream their output files into the store, settle what they cost."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import openai
from openai.types import Batch, ImagesResponse

from assetgen.tasks.batch.records import METADATA_KEY, TERMINAL_STATUSES, BatchBook, BatchRecord
from assetgen.tasks.budget.claims import close_account
from assetgen.tasks.catalog.rows import row_from_outcome
from assetgen.tasks.catalog.writer import CatalogWriter
from assetgen.tasks.config.job import JobConfig
from assetgen.tasks.generation.dispatch import Attempted, JobOutcome
from assetgen.tasks.generation.openai_images import image_result, redact, usage_of
from assetgen.tasks.generation.providers import ProviderError
from assetgen.tasks.generation.run import build_sidecar
from assetgen.tasks.plan.jobs import Job
from assetgen.tasks.plan.pricing import PriceTable, usage_cost
from assetgen.tasks.renditions.postprocess import PostProcessor, rendition_pool
from assetgen.tasks.renditions.signing import signing_material
from assetgen.tasks.store.assets import SIDECAR, AssetStore, now_utc

# Line errors that say nothing about the request itself: the job goes back to the plan.
TRANSIENT_LINE_CODES = frozenset({"batch_expired", "batch_cancelled"})
# How far before our record's time a batch's creation can be stamped by the API.
CLOCK_SLACK_S = 300


@dataclass
class CollectReport:
    """What one collect did."""

    collected: list[BatchRecord] = field(default_factory=list)
    waiting: list[BatchRecord] = field(default_factory=list)
    abandoned: list[BatchRecord] = field(default_factory=list)  # never created: jobs re-planned
    generated: int = 0
    # asset_id -> folder of lines a collect cut short had stored already: their
    # renditions and catalog rows may be missing (see flows/batch.py).
    stored_before: dict[str, str] = field(default_factory=dict)
    failed: int = 0
    returned: int = 0
    spent_usd: float = 0.0
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # batches that could not be read now
    rendition_errors: list[str] = field(default_factory=list)
    catalog_rows: int = 0
    seconds: float = 0.0


def collect(*args: Any, **kwargs: Any) -> CollectReport:
    """Collect every finished batch of the store (see collect_async)."""
    return asyncio.run(collect_async(*args, **kwargs))


async def collect_async(
    store: AssetStore,
    cfg: JobConfig,
    prices: PriceTable,
    run_id: str,
    *,
    wait: bool = False,
    client: openai.AsyncOpenAI | None = None,
    on_batch: Callable[[BatchRecord], None] | None = None,
) -> CollectReport:
    """Store the results of every finished batch once; with `wait`, until none is left open."""
    started = time.monotonic()
    client = client or openai.AsyncOpenAI(max_retries=2, timeout=600)
    book = BatchBook(store)
    report = CollectReport()
    catalog = CatalogWriter(store, run_id)
    presets = {name: cfg.presets[name] for name in cfg.renditions}
    pool = rendition_pool(cfg.render_workers) if presets else None
    post = PostProcessor(store, presets, catalog, pool, signing_material(cfg))
    try:
        while True:
            report.waiting = []
            records = [r for r in await asyncio.to_thread(book.records) if r.open]
            for record in records:
                try:
                    batch = await _refresh(client, book, record, cfg.batch.recover_after_s)
                    if record.state == "abandoned":
                        report.abandoned.append(record)
                    elif batch is not None and batch.status in TERMINAL_STATUSES:
                        await _collect_one(client, store, book, record, batch, prices, post, report)
                        await post.drain()
                        await asyncio.to_thread(catalog.flush)
                        record.state, record.collected_at = "collected", now_utc()
                        await asyncio.to_thread(_settle, store, book, record)
                        report.collected.append(record)
                        if on_batch:
                            on_batch(record)
                    elif record.open:
                        report.waiting.append(record)
                except (openai.APIError, OSError) as e:
                    report.errors.append(f"{record.key}: {type(e).__name__}: {redact(str(e))}")
                    report.waiting.append(record)
            if not wait or not report.waiting:
                break
            await asyncio.sleep(cfg.batch.poll_s)
    finally:
        await post.drain()
        if pool is not None:
            pool.shutdown()
        await asyncio.to_thread(catalog.flush)
        await client.close()
    report.rendition_errors = post.errors + [f"catalog commit: {e}" for e in catalog.errors]
    report.catalog_rows = catalog.rows_written
    report.seconds = time.monotonic() - started
    return report


async def _refresh(
    client: openai.AsyncOpenAI, book: BatchBook, record: BatchRecord, recover_after_s: float
) -> Batch | None:
    """The batch as the API sees it now; finds or gives up batches whose creation was cut short."""
    if record.batch_id is None:
        found = await _find_by_metadata(client, record) if record.input_file_id else None
        if found is None:
            age = (now_utc() - record.created_at).total_seconds()
            if age > recover_after_s:
                record.state = "abandoned"
                record.error = f"not found at OpenAI {age:.0f} s after submission: never created"
                await asyncio.to_thread(_settle, book.store, book, record)
            return None
        record.batch_id, record.state, record.error = found.id, "submitted", None
    batch = await client.batches.retrieve(record.batch_id)
    record.status = batch.status
    if batch.request_counts is not None:
        record.request_counts = batch.request_counts.model_dump()
    await asyncio.to_thread(book.save, record)
    return batch


async def _find_by_metadata(client: openai.AsyncOpenAI, record: BatchRecord) -> Batch | None:
    since = (record.created_at - timedelta(seconds=CLOCK_SLACK_S)).timestamp()
    async for batch in client.batches.list(limit=100):
        if batch.created_at < since:
            break  # newest first: older ones cannot be ours
        if (batch.metadata or {}).get(METADATA_KEY) == record.key:
            return batch
    return None


async def _lines(client: openai.AsyncOpenAI, file_id: str) -> AsyncIterator[str]:
    """A file's lines as they arrive: an output file can be gigabytes."""
    async with client.files.with_streaming_response.content(file_id) as response:
        async for line in response.iter_lines():
            if line.strip():
                yield line


async def _collect_one(
    client: openai.AsyncOpenAI,
    store: AssetStore,
    book: BatchBook,
    record: BatchRecord,
    batch: Batch,
    prices: PriceTable,
    post: PostProcessor,
    report: CollectReport,
) -> None:
    """Every line of a finished batch: images stored, errors recorded, the rest returned."""
    jobs = await asyncio.to_thread(book.jobs, record.key)
    seen: set[str] = set()
    spent = 0.0
    failed: list[JobOutcome] = []
    ended = batch.completed_at or batch.expired_at or batch.cancelled_at or batch.failed_at
    turnaround = float((ended or time.time()) - batch.created_at)
    if batch.status == "failed":
        # The whole input was refused (validation): no line ran, every job is returned.
        problems = (
            [e.message or e.code or "" for e in (batch.errors.data or [])] if batch.errors else []
        )
        record.error = redact("; ".join(p for p in problems if p)[:500] or "batch failed")
        report.failures.append(f"{record.key}: batch failed: {record.error}")
    counts = {"generated": 0, "stored": 0}

    def store_line(line: str) -> tuple[str, Any] | None:
        """Parse and store one output line (in a thread: decoding an image is CPU work)."""
        nonlocal spent
        item = json.loads(line)
        job = jobs.get(item.get("custom_id"))
        if job is None or job.asset_id in seen:
            return None
        seen.add(job.asset_id)
        response = item.get("response") or {}
        if response.get("status_code") != 200:
            return ("error", (job, item))
        body = ImagesResponse.model_validate(response["body"])
        cost = usage_cost(prices, job.model, usage_of(body), batch=True)
        spent += cost
        folder = store.asset_dir(job)
        if store.fs.exists(store.path(f"{folder}/{SIDECAR}")):
            return ("stored", (job.asset_id, folder))
        try:
            result = image_result(body, job, response.get("request_id"))
        except ProviderError as e:
            return ("failed", JobOutcome(job, "failed", e.describe(), cost, 1))
        done = Attempted(result, attempts=1, latency_s=turnaround, cost_usd=cost)
        sidecar = build_sidecar(job, done, record.run_id, "openai")
        sidecar.batch_id = record.batch_id
        store.write_asset(folder, sidecar.original, result.image, sidecar)
        return ("generated", (folder, result.image, sidecar))

    if batch.output_file_id:
        async for line in _lines(client, batch.output_file_id):
            handled = await asyncio.to_thread(store_line, line)
            if handled is None:
                continue
            kind, value = handled
            if kind == "generated":
                counts["generated"] += 1
                await post.submit(*value)
            elif kind == "stored":
                counts["stored"] += 1
                report.stored_before[value[0]] = value[1]
            elif kind == "failed":
                failed.append(value)
            else:
                outcome = _line_error(*value)
                if outcome is not None:
                    failed.append(outcome)
    if batch.error_file_id:
        async for line in _lines(client, batch.error_file_id):
            item = json.loads(line)
            job = jobs.get(item.get("custom_id"))
            if job is None or job.asset_id in seen:
                continue
            seen.add(job.asset_id)
            if (outcome := _line_error(job, item)) is not None:
                failed.append(outcome)
    for outcome in failed:
        post.catalog.add(row_from_outcome(outcome, record.run_id))
        report.failures.append(f"row {outcome.job.row}: {outcome.reason}")
    # Jobs neither stored nor failed for good (expired, cancelled, transient
    # errors, no line at all) are not pending any more: the next run plans them.
    stored = counts["generated"] + counts["stored"]
    record.spent_usd = spent
    record.generated = stored
    record.failed = len(failed)
    record.returned = len(jobs) - stored - len(failed)
    report.generated += counts["generated"]
    report.failed += record.failed
    report.returned += record.returned
    report.spent_usd += spent


def _line_error(job: Job, item: dict[str, Any]) -> JobOutcome | None:
    """A failed line: final for its job (failed outcome) or None when the job should run again."""
    if (error := item.get("error")) is not None:
        code = error.get("code") if isinstance(error, dict) else None
        if code in TRANSIENT_LINE_CODES or code is None:
            return None
        return JobOutcome(job, "failed", redact(f"{code}: {error.get('message')}"), 0.0, 1)
    response = item.get("response") or {}
    status = response.get("status_code")
    if status in (408, 409, 429) or (isinstance(status, int) and status >= 500):
        return None
    err = (response.get("body") or {}).get("error") or {}
    head = " ".join(str(p) for p in (status, err.get("code")) if p)
    return JobOutcome(job, "failed", redact(f"{head}: {err.get('message')}"), 0.0, 1)


def _settle(store: AssetStore, book: BatchBook, record: BatchRecord) -> None:
    """The ledger gets what the batch cost (its hold goes back); then the record is closed."""
    close_account(store, record.account(), record.spent_usd)
    book.save(record)
