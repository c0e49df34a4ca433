"""Revision jobs: the rejected asset's row and parameters, a revision number, the note put to use.

- a note and `how: edit`: an edit of the rejected image (the stored original
  as the first input image) and the row's own reference images, with the
  note as the instruction to fix (notes.edit_instruction);
- a note and `how: prompt`: the row's prompt with every note of the slot
  added as an instruction (notes.revised_prompt), generated again;
- no note: the rejected version's own request again, a fresh variant.

Every input image is read again before anything is planned and checked
against the sha256 it was planned with: one changed or gone refuses its
asset (a Refusal), the others go on.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import fsspec

from assetgen.tasks.config.job import JobConfig
from assetgen.tasks.config.models import JSON_IMAGE_MAX_BYTES, ModelCaps, parse_size
from assetgen.tasks.manifest.read import Reject
from assetgen.tasks.plan.jobs import STYLE_VERSION_KEY, InputImage, Job, new_job
from assetgen.tasks.plan.pricing import PriceTable, estimate_job_cost
from assetgen.tasks.revise.notes import edit_instruction, revised_prompt
from assetgen.tasks.revise.select import Rejected
from assetgen.tasks.store.assets import AssetStore, Sidecar

How = Literal["prompt", "edit"]
Kind = Literal["edit", "prompt", "fresh"]  # what a revision job is: see the module doc
IO_THREADS = 16
CHUNK = 1 << 20


@dataclass
class Refusal:
    """A rejected asset that gets no revision, and why (a per-asset error)."""

    asset_id: str
    row: int
    row_id: str
    code: str
    reason: str

    def reject(self) -> Reject:
        """As a line of the run's rejects file (the contact sheet lists them)."""
        return Reject(
            row=self.row, id=self.row_id, column="revise", code=self.code, reason=self.reason
        )


@dataclass
class RevisionPlan:
    """What revise will ask for: a job per revisable asset, and the assets that get none."""

    selected: int = 0  # rejected, current assets found
    jobs: list[Job] = field(default_factory=list)
    kinds: dict[str, Kind] = field(default_factory=dict)  # job asset_id -> what it is
    over_max: list[Refusal] = field(default_factory=list)  # past max_revisions: not sent
    refused: list[Refusal] = field(default_factory=list)  # inputs gone or changed, and such

    @property
    def counts(self) -> dict[str, int]:
        """The summary's `revised_from`: what the jobs were made from, and the rest."""
        kinds: Counter[str] = Counter(self.kinds.values())
        return {
            "rejected": self.selected,
            "edit": kinds["edit"],
            "prompt": kinds["prompt"],
            "fresh": kinds["fresh"],
            "over_max_revisions": len(self.over_max),
            "refused": len(self.refused),
        }


@dataclass
class _Draft:
    """A revision before its inputs are checked."""

    rejected: Rejected
    kind: Kind
    prompt: str
    references: list[InputImage]
    mask: InputImage | None


def plan_revisions(
    store: AssetStore,
    rejected: Iterable[Rejected],
    cfg: JobConfig,
    models: dict[str, ModelCaps],
    prices: PriceTable,
    how: How | None = None,
) -> RevisionPlan:
    """A revision job for each of `rejected` that can have one (`how` over the config's)."""
    how = how or cfg.revise.how
    plan = RevisionPlan()
    drafts: list[_Draft] = []
    for r in rejected:
        plan.selected += 1
        if r.sidecar.revision + 1 > cfg.revise.max_revisions:
            reason = (
                f"revision {r.sidecar.revision} of its slot was rejected; max_revisions is "
                f"{cfg.revise.max_revisions}"
            )
            plan.over_max.append(_refusal(r, "over_max_revisions", reason))
            continue
        draft = _draft(store, r, how)
        if isinstance(draft, Refusal):
            plan.refused.append(draft)
        else:
            drafts.append(draft)
    checked = _check_inputs({_key(ref): ref for d in drafts for ref in _inputs(d)})
    for draft in drafts:
        job = _job(draft, cfg, models, prices, checked)
        if isinstance(job, Refusal):
            plan.refused.append(job)
        else:
            plan.jobs.append(job)
            plan.kinds[job.asset_id] = draft.kind
    return plan


def _draft(store: AssetStore, r: Rejected, how: How) -> _Draft | Refusal:
    sc = r.sidecar
    if not r.note:
        refs, mask = inputs_of(sc)
        return _Draft(r, "fresh", sc.prompt, refs, mask)
    if r.broken:
        return _refusal(r, "lineage", f"cannot tell the row's own prompt: {r.broken}")
    refs, mask = inputs_of(r.first)
    if how == "prompt":
        return _Draft(r, "prompt", revised_prompt(r.first.prompt, r.notes), refs, mask)
    width, height = _dimensions(sc)
    rejected_image = InputImage(
        uri=store.uri(f"{r.folder}/{sc.original}"),
        sha256=sc.sha256 or "",
        width=width,
        height=height,
    )
    # A mask is kept only where it fits the image it now applies to (the API's rule).
    if mask is not None and (mask.width, mask.height) != (width, height):
        mask = None
    prompt = edit_instruction(r.first.prompt, [r.note], len(refs))
    return _Draft(r, "edit", prompt, [rejected_image, *refs], mask)


def _job(
    draft: _Draft,
    cfg: JobConfig,
    models: dict[str, ModelCaps],
    prices: PriceTable,
    checked: dict[tuple[str, str], tuple[str, str] | int],
) -> Job | Refusal:
    r, sc = draft.rejected, draft.rejected.sidecar
    caps = models.get(sc.model)
    if caps is None or caps.shut_down:
        gone = "is not in configs/models.yaml" if caps is None else f"shut down {caps.shut_down}"
        return _refusal(r, "unknown_model", f"model {sc.model!r} {gone}")
    if not prices.knows(sc.model):
        return _refusal(r, "no_price", f"no price for model {sc.model!r} in the price table")
    if len(draft.prompt) > caps.max_prompt_chars:
        return _refusal(
            r,
            "prompt_too_long",
            f"the prompt with the note has {len(draft.prompt):,} characters, the model takes "
            f"at most {caps.max_prompt_chars:,}",
        )
    if len(draft.references) > caps.max_reference_images:
        return _refusal(
            r,
            "too_many_references",
            f"an edit needs the rejected image besides the row's {len(draft.references) - 1} "
            f"reference images: more than the model's {caps.max_reference_images} "
            "(use --how prompt)",
        )
    params = sc.params
    moderation = params.get("moderation")
    for ref in _inputs(draft):
        found = checked[_key(ref)]
        if isinstance(found, tuple):
            code, problem = found
            if draft.kind == "edit" and ref is draft.references[0]:
                return _refusal(r, code, f"the rejected image {ref.uri} {problem}")
            return _refusal(r, code, f"reference image {ref.uri} {problem}")
        limit = caps.max_mask_bytes if ref is draft.mask else caps.max_reference_bytes
        if moderation == "low" and ref is not draft.mask:
            limit = min(limit, JSON_IMAGE_MAX_BYTES)
        if found > limit:
            return _refusal(
                r, "too_large", f"{ref.uri} is {found:,} bytes, at most {limit:,} can be sent"
            )
    size, quality = str(params.get("size")), str(params.get("quality"))
    cost = estimate_job_cost(
        prices,
        sc.model,
        size,
        quality,
        len(draft.prompt),
        [(ref.width, ref.height) for ref in draft.references],
        (draft.mask.width, draft.mask.height) if draft.mask else None,
    )
    output_format = str(params.get("output_format") or "png")
    background = str(params.get("background") or "auto")
    revision = sc.revision + 1
    return new_job(
        # As the planner hashed the first version: two styles' revisions stay apart.
        style_version=sc.metadata.get(STYLE_VERSION_KEY),
        row=sc.row,
        row_id=sc.row_id,
        variant=sc.variant,
        model=sc.model,
        prompt=draft.prompt,
        size=size,
        quality=quality,
        output_format=output_format,
        output_compression=params.get("output_compression"),
        background=background,
        moderation=moderation,
        references=draft.references,
        mask=draft.mask,
        partition=sc.partition,
        metadata=sc.metadata,
        cost_low=cost.low,
        cost_expected=cost.expected,
        cost_worst=cost.worst,
        batchable=not draft.references or size in caps.sizes.json_edit,
        review=cfg.review,
        revision=revision,
        revision_of=r.asset_id,
        revision_note=r.note,
        created_after=sc.created_at,
    )


def inputs_of(sidecar: Sidecar) -> tuple[list[InputImage], InputImage | None]:
    """The reference images and the mask a stored asset was made with."""
    refs: list[InputImage] = []
    mask = None
    for item in sidecar.references:
        image = InputImage.model_validate({k: v for k, v in item.items() if k != "mask"})
        if item.get("mask"):
            mask = image
        else:
            refs.append(image)
    return refs, mask


def _dimensions(sc: Sidecar) -> tuple[int, int]:
    if sc.width and sc.height:
        return sc.width, sc.height
    returned = parse_size(str(sc.returned.get("size") or sc.params.get("size") or ""))
    return returned or (1024, 1024)


def _inputs(draft: _Draft) -> list[InputImage]:
    return [*draft.references, *([draft.mask] if draft.mask else [])]


def _key(ref: InputImage) -> tuple[str, str]:
    return ref.uri, ref.sha256


def _check_inputs(
    images: dict[tuple[str, str], InputImage],
) -> dict[tuple[str, str], tuple[str, str] | int]:
    """Per (URI, sha256): its size in bytes, or (code, problem) when it is gone or changed."""
    with ThreadPoolExecutor(IO_THREADS) as pool:
        return dict(zip(images, pool.map(check_input, images.values()), strict=True))


def check_input(ref: InputImage) -> tuple[str, str] | int:
    """Read `ref` again: its size in bytes, or why it cannot be sent as it was planned."""
    digest = hashlib.sha256()
    size = 0
    try:
        with fsspec.open(ref.uri, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        return "missing_reference", "is not there any more"
    except Exception as e:  # any backend error means the same here: it cannot be read
        return "missing_reference", f"cannot be read: {type(e).__name__}: {e}"
    found = digest.hexdigest()
    if found != ref.sha256:
        return (
            "changed_reference",
            f"changed since the rejected version was made (sha256 now {found[:12]}..., "
            f"then {(ref.sha256 or 'unknown')[:12]}...): not sent",
        )
    return size


def _refusal(r: Rejected, code: str, reason: str) -> Refusal:
    sc = r.sidecar
    return Refusal(r.asset_id, sc.row, sc.row_id, code, f"{r.asset_id}: {reason}")


def revision_rows(plan: RevisionPlan) -> list[dict[str, Any]]:
    """The summary's `revisions`: each job's new asset, what it revises and how."""
    return [
        {
            "asset_id": job.asset_id,
            "revision_of": job.revision_of,
            "revision": job.revision,
            "row_id": job.row_id,
            "how": plan.kinds[job.asset_id],
        }
        for job in plan.jobs
    ]
