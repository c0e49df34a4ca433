"""From manifest to jobs: one per image variant, each with a stable asset_id and a cost range."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from assetgen.tasks.config.models import JSON_IMAGE_MAX_BYTES, ModelCaps
from assetgen.tasks.manifest.read import RawRow, Reject, read_manifest
from assetgen.tasks.manifest.references import (
    ImageRef,
    ReferenceCache,
    parent_of,
    resolve_uri,
    within,
)
from assetgen.tasks.manifest.rows import ManifestRow, RowContext, validate_row
from assetgen.tasks.plan.pricing import Cost, PriceTable, estimate_job_cost

# Bump when the meaning of an asset_id input changes, so old assets are not
# mistaken for new ones.
ASSET_ID_VERSION = 1
# The job metadata key that records the config's style_version (sidecar, catalog).
STYLE_VERSION_KEY = "style_version"


class InputImage(BaseModel):
    """A reference image or mask as a job needs it."""

    uri: str
    sha256: str
    width: int
    height: int


class Job(BaseModel):
    """One image to generate: everything the provider call and the store need."""

    asset_id: str
    row: int
    row_id: str
    variant: int
    model: str
    prompt: str
    size: str
    quality: str
    output_format: str
    output_compression: int | None
    background: str
    moderation: str | None = None  # None: not sent (the API's default, auto)
    references: list[InputImage] = []
    mask: InputImage | None = None
    partition: dict[str, str] = {}
    metadata: dict[str, Any] = {}
    cost_low: float
    cost_expected: float
    cost_worst: float
    # False for an edit in a size the Batch API's JSON edit body does not
    # take: batch mode sends it online instead.
    batchable: bool = True
    # The job config's review setting: "off" makes the image count as approved.
    review: Literal["required", "off"] = "required"
    # A revision of a rejected asset (tasks/revise): its number, the asset it
    # revises and the reviewer's note it answers; 0 / None for a first version.
    revision: int = 0
    revision_of: str | None = None
    revision_note: str | None = None
    # The created_at of the version it revises: the new one is stamped later,
    # so it is the current version of the slot whatever this machine's clock says.
    created_after: datetime | None = None
    # A row that shares an earlier row's picture (same image-deciding fields) when the
    # renditions draw overlays: the asset_id of that picture, which is paid for once.
    # This job sends nothing; its asset is a copy of that original with this row's
    # columns and its own overlay renditions (tasks/generation/shared.py). None: its own.
    shares: str | None = None

    @property
    def params(self) -> dict[str, Any]:
        """The request parameters that decide the image, besides model and prompt."""
        return {
            "size": self.size,
            "quality": self.quality,
            "output_format": self.output_format,
            "output_compression": self.output_compression,
            "background": self.background,
            "moderation": self.moderation,
        }

    @property
    def cost(self) -> Cost:
        return Cost(self.cost_low, self.cost_expected, self.cost_worst)


def asset_id(
    *,
    model: str,
    prompt: str,
    size: str,
    quality: str,
    output_format: str,
    output_compression: int | None,
    background: str,
    reference_sha256: list[str],
    mask_sha256: str | None,
    variant: int,
    style_version: str | None = None,
    moderation: str | None = None,
    revision: int = 0,
) -> str:
    """A stable hash of everything that decides the image (DESIGN invariant 1).

    `style_version` is an input only when set, `moderation` only when it is
    `low` (`auto` is what the API does unasked), and `revision` only when it
    is above 0 (a revision of a rejected asset), so every id made without
    them stays what it was.
    """
    decisive: dict[str, Any] = {
        "v": ASSET_ID_VERSION,
        "model": model,
        "prompt": prompt,
        "size": size,
        "quality": quality,
        "output_format": output_format,
        "output_compression": output_compression,
        "background": background,
        "references": reference_sha256,
        "mask": mask_sha256,
        "variant": variant,
    }
    if style_version is not None:
        decisive["style_version"] = style_version
    if moderation == "low":
        decisive["moderation"] = moderation
    if revision > 0:
        decisive["revision"] = revision
    canonical = json.dumps(decisive, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def shared_asset_id(picture: str, row_id: str) -> str:
    """The asset_id of a row's own asset over another row's picture `picture`: the picture
    and the row id decide it, so it is stable from run to run and never a picture's id."""
    canonical = json.dumps({"v": ASSET_ID_VERSION, "shares": picture, "row_id": row_id})
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def sharing(job: Job, picture: str) -> Job:
    """`job` as its row's own asset over `picture`: nothing to send, nothing to pay."""
    return job.model_copy(
        update={
            "asset_id": shared_asset_id(picture, job.row_id),
            "shares": picture,
            "cost_low": 0.0,
            "cost_expected": 0.0,
            "cost_worst": 0.0,
        }
    )


def draws_overlays(config: Any) -> bool:
    """Whether the config's renditions draw overlays: then each row needs its own asset."""
    return any(config.presets[name].overlays for name in config.renditions)


def new_job(*, style_version: str | None = None, **fields: Any) -> Job:
    """A Job of `fields`, its asset_id worked out from the fields that decide the image."""
    job = Job(asset_id="", **fields)
    job.asset_id = asset_id(
        model=job.model,
        prompt=job.prompt,
        size=job.size,
        quality=job.quality,
        output_format=job.output_format,
        output_compression=job.output_compression,
        background=job.background,
        reference_sha256=[r.sha256 for r in job.references],
        mask_sha256=job.mask.sha256 if job.mask else None,
        variant=job.variant,
        style_version=style_version,
        moderation=job.moderation,
        revision=job.revision,
    )
    return job


@dataclass
class Planner:
    """Streams a manifest into jobs and rejects; keeps the state that spans rows."""

    ctx: RowContext
    prices: PriceTable
    references: ReferenceCache = field(default_factory=ReferenceCache)
    _first_row_of_id: dict[str, int] = field(default_factory=dict)
    # With overlay renditions: picture asset_id -> the row id that pays for it (the first
    # in manifest order); later rows with the same picture get their own sharing asset.
    _picture_owner: dict[str, str] = field(default_factory=dict)
    _overlays: bool | None = None
    # A manifest repeats few (model, size, quality, prompt length, inputs): at
    # 100k rows this cache saves about a sixth of the plan time.
    _costs: dict[tuple[Any, ...], Cost] = field(default_factory=dict)

    def _cost(
        self,
        model: str,
        size: str,
        quality: str,
        chars: int,
        inputs: list[tuple[int, int]],
        mask: tuple[int, int] | None,
    ) -> Cost:
        key = (model, size, quality, chars, mask, *inputs)
        if (cost := self._costs.get(key)) is None:
            cost = self._costs[key] = estimate_job_cost(
                self.prices, model, size, quality, chars, inputs, mask
            )
        return cost

    def plan(self, url: str, fmt: str | None = None) -> Iterator[Job | Reject]:
        """Every job and every reject of the manifest at `url`, in row order."""
        base = parent_of(url)
        for batch in read_manifest(url, fmt):
            checked: list[ManifestRow | list[Reject]] = []
            for item in batch:
                checked.append([item] if isinstance(item, Reject) else self._check(item))
            self.references.fetch(
                resolved
                for row in checked
                if isinstance(row, ManifestRow)
                for uri in [*row.reference_images, *([row.mask] if row.mask else [])]
                if self._allowed(resolved := resolve_uri(uri, base), base)
            )
            for row in checked:
                if isinstance(row, ManifestRow):
                    yield from self._jobs(row, base)
                else:
                    yield from row

    def _allowed(self, uri: str, base: str) -> bool:
        # Checked before anything is read: a manifest must not make us open
        # /etc/passwd or an internal URL.
        roots = self.ctx.config.reference_roots
        return roots is None or within(uri, [base, *roots])

    def _check(self, raw: RawRow) -> ManifestRow | list[Reject]:
        result = validate_row(raw, self.ctx)
        row_id = result.id if isinstance(result, ManifestRow) else _rejected_id(result)
        if not row_id:
            return result
        first = self._first_row_of_id.setdefault(row_id, raw.number)
        if first == raw.number:
            return result
        dup = Reject(
            row=raw.number,
            id=row_id,
            column="id",
            code="duplicate_id",
            reason=f"duplicate id, first used at row {first}",
        )
        return [dup, *(result if isinstance(result, list) else [])]

    def _jobs(self, row: ManifestRow, base: str) -> Iterator[Job | Reject]:
        caps = self.ctx.models[row.model]
        refs, rejects = self._input_images(row, base, caps)
        if rejects:
            yield from rejects
            return
        if not self.prices.knows(row.model):
            yield Reject(
                row=row.row,
                id=row.id,
                column="model",
                code="no_price",
                reason=f"no price for model {row.model!r} in the price table",
            )
            return
        mask = refs.pop() if row.mask else None
        style_version = self.ctx.config.style_version
        metadata = row.metadata
        if style_version is not None:
            # The config's label wins over a manifest column of the same name.
            metadata = {**metadata, STYLE_VERSION_KEY: style_version}
        cost = self._cost(
            row.model,
            row.size,
            row.quality,
            len(row.prompt),
            [(r.width, r.height) for r in refs],
            (mask.width, mask.height) if mask else None,
        )
        for variant in range(row.n):
            yield self._own(
                new_job(
                    style_version=style_version,
                    row=row.row,
                    row_id=row.id,
                    variant=variant,
                    model=row.model,
                    prompt=row.prompt,
                    size=row.size,
                    quality=row.quality,
                    output_format=row.output_format,
                    output_compression=row.output_compression,
                    background=row.background,
                    moderation=row.moderation,
                    references=[_input_image(r) for r in refs],
                    mask=_input_image(mask) if mask else None,
                    partition=row.partition,
                    metadata=metadata,
                    cost_low=cost.low,
                    cost_expected=cost.expected,
                    cost_worst=cost.worst,
                    review=self.ctx.config.review,
                    batchable=not refs or row.size in caps.sizes.json_edit,
                )
            )

    def _own(self, job: Job) -> Job:
        """`job`, or with overlays a sharing job when an earlier row has its picture.

        Without overlay renditions rows with one picture are one asset (the later
        ones duplicates), as always: their asset_ids never change."""
        if self._overlays is None:
            self._overlays = draws_overlays(self.ctx.config)
        if not self._overlays:
            return job
        owner = self._picture_owner.setdefault(job.asset_id, job.row_id)
        return job if owner == job.row_id else sharing(job, job.asset_id)

    def _input_images(
        self, row: ManifestRow, base: str, caps: ModelCaps
    ) -> tuple[list[ImageRef], list[Reject]]:
        """Probe results for the references (then the mask, last), or why they fail."""
        found: list[ImageRef] = []
        rejects: list[Reject] = []

        def reject(column: str, code: str, reason: str) -> None:
            rejects.append(Reject(row=row.row, id=row.id, column=column, code=code, reason=reason))

        for uri in row.reference_images:
            resolved = resolve_uri(uri, base)
            if not self._allowed(resolved, base):
                reject(
                    "reference_images",
                    "not_allowed",
                    f"{uri} is outside the manifest's folder and reference_roots",
                )
                continue
            ref = self.references.get(resolved)
            if isinstance(ref, str):
                reject("reference_images", "unreadable_reference", f"{uri} {ref}")
            elif ref.size_bytes > caps.max_reference_bytes:
                reject(
                    "reference_images",
                    "too_large",
                    f"{uri} is {ref.size_bytes:,} bytes, the model takes at most "
                    f"{caps.max_reference_bytes:,}",
                )
            elif row.moderation == "low" and ref.size_bytes > JSON_IMAGE_MAX_BYTES:
                reject(
                    "reference_images",
                    "too_large",
                    f"{uri} is {ref.size_bytes:,} bytes: with moderation low an edit goes as "
                    f"JSON, whose images take at most {JSON_IMAGE_MAX_BYTES:,} bytes each",
                )
            else:
                found.append(ref)
        if row.mask and not self._allowed(resolve_uri(row.mask, base), base):
            reject("mask", "not_allowed", f"{row.mask} is outside the allowed locations")
        elif row.mask:
            mask = self.references.get(resolve_uri(row.mask, base))
            if isinstance(mask, str):
                reject("mask", "unreadable_reference", f"{row.mask} {mask}")
            elif mask.format != "png" or not mask.has_alpha:
                reject("mask", "bad_mask", f"{row.mask} must be a PNG with an alpha channel")
            elif mask.size_bytes > caps.max_mask_bytes:
                reject(
                    "mask",
                    "too_large",
                    f"{row.mask} is {mask.size_bytes:,} bytes, at most {caps.max_mask_bytes:,}",
                )
            elif found and (mask.width, mask.height) != (found[0].width, found[0].height):
                reject(
                    "mask",
                    "size_mismatch",
                    f"mask is {mask.width}x{mask.height}, the first reference image is "
                    f"{found[0].width}x{found[0].height}",
                )
            else:
                found.append(mask)
        return found, rejects


def _rejected_id(rejects: list[Reject]) -> str | None:
    return next((r.id for r in rejects if r.id), None)


def _input_image(ref: ImageRef) -> InputImage:
    return InputImage(uri=ref.uri, sha256=ref.sha256, width=ref.width, height=ref.height)


@dataclass
class PlanSummary:
    """Counts and cost of a plan, built one job or reject at a time."""

    rows: int = 0
    valid_rows: int = 0
    rejected_rows: int = 0
    jobs: int = 0
    duplicate_jobs: int = 0
    # Rows' own assets over another row's picture (Job.shares): no image, no cost.
    shared_jobs: int = 0
    cost: Cost = field(default_factory=Cost)
    cost_by_model: dict[str, Cost] = field(default_factory=dict)
    # Jobs batch mode sends online (Job.batchable), and what they cost there.
    unbatchable_jobs: int = 0
    unbatchable_cost: Cost = field(default_factory=Cost)
    unbatchable_by_model: dict[str, Cost] = field(default_factory=dict)
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[tuple[str, str], Reject] = field(default_factory=dict)
    _asset_ids: set[str] = field(default_factory=set)
    _last_row: int = 0
    _last_row_rejected: bool = False

    def add(self, item: Job | Reject) -> None:
        """Count one item of the plan stream (items come in row order)."""
        if item.row != self._last_row:
            self.rows += 1
            self._last_row = item.row
            self._last_row_rejected = False
        if isinstance(item, Reject):
            key = (item.column or "(row)", item.code)
            self.reasons[key] += 1
            self.examples.setdefault(key, item)
            if not self._last_row_rejected:
                self.rejected_rows += 1
                self._last_row_rejected = True
            return
        if item.variant == 0:
            self.valid_rows += 1
        if item.shares is not None:
            self.shared_jobs += 1
            return
        if item.asset_id in self._asset_ids:
            self.duplicate_jobs += 1
            return
        self._asset_ids.add(item.asset_id)
        self.jobs += 1
        self.cost += item.cost
        self.cost_by_model[item.model] = self.cost_by_model.get(item.model, Cost()) + item.cost
        if not item.batchable:
            self.unbatchable_jobs += 1
            self.unbatchable_cost += item.cost
            by_model = self.unbatchable_by_model
            by_model[item.model] = by_model.get(item.model, Cost()) + item.cost

    def batch_cost(self, prices: PriceTable) -> Cost:
        """What batch mode costs: the Batch API price of each model, and online for the jobs
        the Batch API cannot take (`unbatchable_cost`)."""
        total = self.unbatchable_cost
        for model, cost in self.cost_by_model.items():
            batched = cost - self.unbatchable_by_model.get(model, Cost())
            total += batched.scaled(1 - prices.pricing(model).batch_discount)
        return total

    def top_reasons(self, limit: int = 10) -> list[dict[str, Any]]:
        """The most frequent reject reasons, each with a count and one example."""
        return [
            {
                "column": column,
                "code": code,
                "count": count,
                "example_row": self.examples[(column, code)].row,
                "example": self.examples[(column, code)].reason,
            }
            for (column, code), count in self.reasons.most_common(limit)
        ]
