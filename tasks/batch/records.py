"""Batch API mode: request lines, how they are split, and the records of batches in the store.

Everything a batch needs after submission lives under `<store>/_batches/<key>/`:
`batch.json` (the record: OpenAI ids, state, reserved and spent money) and
`jobs.jsonl` (the jobs it carries), so collecting never depends on the
submitting process still being alive.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from assetgen.tasks.budget.ledger import Account, day_of
from assetgen.tasks.plan.jobs import Job
from assetgen.tasks.plan.pricing import PriceTable
from assetgen.tasks.store.assets import AssetStore

BATCHES = "_batches"
GENERATIONS, EDITS = "/v1/images/generations", "/v1/images/edits"
# The batch's metadata key that finds it again when its creation was cut short.
METADATA_KEY = "assetgen_batch"
# submitting: written before the batch is created at OpenAI (it may or may not
# exist); submitted: it exists; collected: its results are stored, nothing
# more to do; abandoned: it never existed, its jobs go back to the plan.
BatchState = Literal["submitting", "submitted", "collected", "abandoned"]
OPEN_STATES = ("submitting", "submitted")
TERMINAL_STATUSES = frozenset({"completed", "expired", "cancelled", "failed"})


class BatchRecord(BaseModel):
    """One batch as the store remembers it."""

    key: str
    run_id: str
    created_at: datetime
    endpoint: str
    asset_ids: list[str]
    reserved_usd: float
    input_file_id: str | None = None
    reference_file_ids: dict[str, str] = {}  # sha256 -> uploaded file id
    batch_id: str | None = None
    state: BatchState = "submitting"
    status: str | None = None  # as the API last reported it
    request_counts: dict[str, int] = {}
    spent_usd: float = 0.0
    generated: int = 0
    failed: int = 0
    returned: int = 0
    collected_at: datetime | None = None
    error: str | None = None
    # The day its money counts in (the submitting run's); None: records of
    # earlier versions, whose ledger entry was made on their creation day.
    ledger_day: str | None = None

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES

    def account(self) -> Account:
        """Its account in the store's ledger: held until collected, then what it cost."""
        return Account(
            id=f"batch-{self.key}",
            kind="batch",
            group=self.run_id,
            day=self.ledger_day or day_of(self.created_at),
            opened_at=self.created_at,
            updated_at=self.created_at,
        )


class BatchBook:
    """The batch records of one store."""

    def __init__(self, store: AssetStore) -> None:
        self.store = store

    def records(self) -> list[BatchRecord]:
        """Every record, oldest first."""
        fs = self.store.fs
        paths = sorted(fs.glob(f"{self.store.path(BATCHES)}/*/batch.json"))
        records = []
        for path in paths:
            with fs.open(path, "rb") as f:
                records.append(BatchRecord.model_validate_json(f.read()))
        return records

    def get(self, key: str) -> BatchRecord:
        return BatchRecord.model_validate_json(self.store.read_bytes(f"{BATCHES}/{key}/batch.json"))

    def save(self, record: BatchRecord) -> None:
        self.store.write_bytes(
            f"{BATCHES}/{record.key}/batch.json", record.model_dump_json(indent=2).encode()
        )

    def save_jobs(self, key: str, jobs: Iterable[Job]) -> None:
        data = "".join(job.model_dump_json() + "\n" for job in jobs).encode()
        self.store.write_bytes(f"{BATCHES}/{key}/jobs.jsonl", data)

    def jobs(self, key: str) -> dict[str, Job]:
        """asset_id -> job, of the jobs a batch carries."""
        with self.store.fs.open(self.store.path(f"{BATCHES}/{key}/jobs.jsonl"), "rb") as f:
            return {
                (job := Job.model_validate_json(line)).asset_id: job for line in f if line.strip()
            }

    def pending_asset_ids(self) -> set[str]:
        """Assets of batches not yet collected: paid for or about to be, never to be sent again."""
        return {a for r in self.records() if r.open for a in r.asset_ids}


def endpoint(job: Job) -> str:
    return EDITS if job.references else GENERATIONS


def batch_worst_case(prices: PriceTable, job: Job) -> float:
    """The job's worst case at the Batch API price."""
    return job.cost_worst * (1 - prices.pricing(job.model).batch_discount)


def request_line(job: Job, file_ids: dict[str, str]) -> dict[str, Any]:
    """One JSONL line of an input file; references travel as uploaded file ids."""
    body: dict[str, Any] = {"model": job.model, "prompt": job.prompt, "n": 1}
    body |= {k: v for k, v in job.params.items() if v is not None}
    if job.references:
        body["images"] = [{"file_id": file_ids[ref.sha256]} for ref in job.references]
        if job.mask is not None:
            body["mask"] = {"file_id": file_ids[job.mask.sha256]}
    return {"custom_id": job.asset_id, "method": "POST", "url": endpoint(job), "body": body}


def split_batches(
    jobs: Iterable[Job], file_ids: dict[str, str], max_requests: int, max_bytes: int
) -> Iterator[tuple[str, list[Job], bytes]]:
    """(endpoint, jobs, input file) chunks within the API's limits.

    A batch has one endpoint and one model (the API refuses mixed models).
    """
    groups: dict[tuple[str, str], list[Job]] = {}
    for job in jobs:
        if not job.batchable:
            # The JSON edit body would refuse it a day later: batch mode sends it online.
            raise ValueError(f"{job.asset_id}: an edit in size {job.size} cannot be a batch line")
        groups.setdefault((endpoint(job), job.model), []).append(job)
    for (url, _), group in groups.items():
        chunk: list[Job] = []
        lines: list[bytes] = []
        size = 0
        for job in group:
            line = json.dumps(request_line(job, file_ids), ensure_ascii=False).encode() + b"\n"
            if len(line) > max_bytes:
                raise ValueError(f"request line of {job.asset_id} alone exceeds {max_bytes} bytes")
            if chunk and (len(chunk) >= max_requests or size + len(line) > max_bytes):
                yield url, chunk, b"".join(lines)
                chunk, lines, size = [], [], 0
            chunk.append(job)
            lines.append(line)
            size += len(line)
        if chunk:
            yield url, chunk, b"".join(lines)
