"""Submit jobs to OpenAI's Batch API: budget at the batch price, upload, create, record."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import openai

from assetgen.tasks.batch.records import (
    METADATA_KEY,
    BatchBook,
    BatchRecord,
    batch_worst_case,
    split_batches,
)
from assetgen.tasks.budget.claims import LedgerAccount, close_account
from assetgen.tasks.catalog.rows import row_from_outcome
from assetgen.tasks.catalog.writer import CatalogWriter
from assetgen.tasks.config.job import JobConfig
from assetgen.tasks.generation.dispatch import JobOutcome
from assetgen.tasks.generation.openai_images import read_reference, redact, status_error
from assetgen.tasks.generation.providers import ProviderError
from assetgen.tasks.generation.run import open_account, period_figures
from assetgen.tasks.plan.jobs import InputImage, Job
from assetgen.tasks.plan.pricing import PriceTable
from assetgen.tasks.store.assets import AssetStore, now_utc

COMPLETION_WINDOW = "24h"


@dataclass
class SubmitReport:
    """What a batch-mode run sent, and what it could not."""

    batches: list[BatchRecord] = field(default_factory=list)
    outcomes: list[JobOutcome] = field(default_factory=list)  # jobs not in any batch
    reserved_usd: float = 0.0
    cap_usd: float | None = None
    period: dict[str, Any] | None = None
    stop_reason: str | None = None
    seconds: float = 0.0

    @property
    def submitted(self) -> int:
        return sum(len(b.asset_ids) for b in self.batches)


def batch_client() -> openai.OpenAI:
    """The SDK client for files and batches (reads OPENAI_API_KEY / OPENAI_BASE_URL)."""
    return openai.OpenAI(max_retries=2, timeout=600)


def submit(
    jobs: list[Job],
    cfg: JobConfig,
    store: AssetStore,
    run_id: str,
    started_at: datetime,
    prices: PriceTable,
    client: openai.OpenAI | None = None,
) -> SubmitReport:
    """Reserve, upload and create batches for `jobs`; every batch is recorded before it exists.

    The run claims the worst case at the batch price of what it submits from
    the store's ledger at once; each batch takes its part of that claim into
    an account of its own, held until `collect` settles it with the bill.
    """
    started = time.monotonic()
    client = client or batch_client()
    book = BatchBook(store)
    account = open_account(cfg, store, run_id, started_at)
    before = account.period_total()
    report = SubmitReport(cap_usd=cfg.budget.cap_usd)
    try:
        chosen = _claim(account, jobs, prices, report)
        _submit(client, book, account, chosen, cfg, run_id, prices, report)
    finally:
        account.close(0.0)  # what no batch took goes back
    report.reserved_usd = sum(b.reserved_usd for b in report.batches)
    report.period = period_figures(account, before)
    # Jobs that went into no batch get their catalog rows now, as online runs
    # give theirs; the others get theirs when their batch is collected.
    catalog = CatalogWriter(store, run_id)
    for outcome in report.outcomes:
        catalog.add(row_from_outcome(outcome, run_id))
    catalog.flush()
    report.seconds = time.monotonic() - started
    return report


def _claim(
    account: LedgerAccount, jobs: list[Job], prices: PriceTable, report: SubmitReport
) -> list[Job]:
    """Claim the worst case of every job, or as much as the caps leave; the jobs that fit."""
    worst = [batch_worst_case(prices, job) for job in jobs]
    if not jobs:
        return []
    # All at once, not shared: a submit is one decision, not a stream of requests.
    held = account.claim(min(worst), sum(worst), 0.0, share=False)
    chosen: list[Job] = []
    used = 0.0
    for job, cost in zip(jobs, worst, strict=True):
        if used + cost > held + 1e-12:
            left = f"${max(0.0, held - used):.4f} left"
            if account.shortfall:
                left += f" ({account.shortfall} when claimed)"
            reason = f"not submitted: worst case ${cost:.4f} exceeds the {left}"
            report.outcomes.append(JobOutcome(job, "budget_exhausted", reason))
        else:
            used += cost
            chosen.append(job)
    return chosen


def _submit(
    client: openai.OpenAI,
    book: BatchBook,
    account: LedgerAccount,
    chosen: list[Job],
    cfg: JobConfig,
    run_id: str,
    prices: PriceTable,
    report: SubmitReport,
) -> None:
    file_ids, chosen = _upload_references(client, chosen, report)
    limits = cfg.batch
    chunks = split_batches(chosen, file_ids, limits.max_requests, limits.max_file_bytes)
    for index, (url, chunk, data) in enumerate(chunks):
        if report.stop_reason:
            reason = f"not submitted: {report.stop_reason}"
            report.outcomes += [JobOutcome(job, "stopped", reason) for job in chunk]
            continue
        refs = {ref.sha256 for job in chunk for ref in _inputs(job)}
        record = BatchRecord(
            key=f"{run_id}-{index:03d}",
            run_id=run_id,
            created_at=now_utc(),
            endpoint=url,
            asset_ids=[job.asset_id for job in chunk],
            reserved_usd=sum(batch_worst_case(prices, job) for job in chunk),
            reference_file_ids={sha: file_ids[sha] for sha in refs},
            ledger_day=account.template.day,
        )
        _create(client, book, account, record, chunk, data, report)


def _upload_references(
    client: openai.OpenAI, jobs: list[Job], report: SubmitReport
) -> tuple[dict[str, str], list[Job]]:
    """Upload each distinct reference image and mask once; jobs whose references fail drop out."""
    file_ids: dict[str, str] = {}
    failed: dict[str, str] = {}
    kept = []
    for job in jobs:
        reason = None
        for ref in _inputs(job):
            if ref.sha256 in failed:
                reason = failed[ref.sha256]
            elif ref.sha256 not in file_ids and not report.stop_reason:
                try:
                    upload = read_reference(ref)
                    file_ids[ref.sha256] = client.files.create(file=upload, purpose="vision").id
                except ProviderError as e:
                    reason = failed[ref.sha256] = e.describe()
                except openai.APIError as e:
                    reason = failed[ref.sha256] = f"reference upload failed: {_describe(e)}"
                    _maybe_stop(e, report)
            if reason:
                break
        if reason or report.stop_reason:
            status = "failed" if reason else "stopped"
            report.outcomes.append(JobOutcome(job, status, reason or report.stop_reason))
        else:
            kept.append(job)
    return file_ids, kept


def _create(
    client: openai.OpenAI,
    book: BatchBook,
    account: LedgerAccount,
    record: BatchRecord,
    jobs: list[Job],
    data: bytes,
    report: SubmitReport,
) -> None:
    """Record, hold, upload, create, record again: a crash anywhere leaves a record to reconcile."""
    book.save_jobs(record.key, jobs)
    book.save(record)
    account.move(record.account().id, record.reserved_usd)
    try:
        upload = client.files.create(file=(f"{record.key}.jsonl", data), purpose="batch")
        record.input_file_id = upload.id
        book.save(record)
        # No SDK retry here: a retried create could start a second, paid batch.
        batch = client.with_options(max_retries=0).batches.create(
            input_file_id=upload.id,
            endpoint=record.endpoint,  # type: ignore[arg-type]
            completion_window=COMPLETION_WINDOW,
            metadata={METADATA_KEY: record.key, "assetgen_run": record.run_id},
        )
    except (openai.APITimeoutError, openai.APIConnectionError, openai.InternalServerError) as e:
        if record.input_file_id is None:
            _abandon(book, record, jobs, f"input upload failed: {_describe(e)}", report)
            return
        # The batch may exist: leave the record for `collect` to find it by metadata.
        record.error = f"creation unconfirmed: {_describe(e)}"
        book.save(record)
        report.batches.append(record)
        return
    except openai.APIError as e:
        _abandon(book, record, jobs, f"batch not created: {_describe(e)}", report)
        _maybe_stop(e, report)
        return
    record.batch_id, record.status, record.state = batch.id, batch.status, "submitted"
    book.save(record)
    report.batches.append(record)


def _abandon(
    book: BatchBook, record: BatchRecord, jobs: list[Job], reason: str, report: SubmitReport
) -> None:
    record.state, record.error = "abandoned", reason
    book.save(record)
    close_account(book.store, record.account(), 0.0)
    report.outcomes += [JobOutcome(job, "failed", reason) for job in jobs]


def _inputs(job: Job) -> list[InputImage]:
    return [*job.references, *([job.mask] if job.mask else [])]


def _describe(e: openai.APIError) -> str:
    if isinstance(e, openai.APIStatusError):
        return status_error(e).describe()
    return redact(f"{type(e).__name__}: {e.message}")


def _maybe_stop(e: openai.APIError, report: SubmitReport) -> None:
    # Same rule as online: a bad key, no quota or no access ends the run.
    if isinstance(e, openai.APIStatusError) and status_error(e).scope == "run":
        report.stop_reason = _describe(e)
