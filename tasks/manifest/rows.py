"""Turn a raw manifest record into a validated `ManifestRow` or a list of rejects.

Every check that needs only the row itself and the model capability table
lives here; reference images are opened later (tasks/manifest/references.py), in
parallel, for the rows that pass.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from assetgen.tasks.config.job import JobConfig
from assetgen.tasks.config.models import ModelCaps, parse_size, size_problem
from assetgen.tasks.manifest.prompts import PromptTemplate, TemplateError
from assetgen.tasks.manifest.read import RawRow, Reject

# Columns that set request parameters; everything else is a template field,
# a partition value or metadata.
REQUEST_COLUMNS = (
    "model",
    "size",
    "quality",
    "output_format",
    "output_compression",
    "background",
    "moderation",
    "n",
)
RESERVED_COLUMNS = {"id", "prompt", "reference_images", "mask", *REQUEST_COLUMNS}
MAX_ID_CHARS = 256
MAX_PARTITION_CHARS = 128


@dataclass(frozen=True)
class RowContext:
    """What validation needs besides the row: the config and the capability table."""

    config: JobConfig
    models: dict[str, ModelCaps]
    template: PromptTemplate | None = None

    @classmethod
    def build(cls, config: JobConfig, models: dict[str, ModelCaps]) -> RowContext:
        """Compile the template once for the whole manifest."""
        template = PromptTemplate(config.prompt_template) if config.prompt_template else None
        return cls(config=config, models=models, template=template)


def _fail(code: str, message: str) -> PydanticCustomError:
    # The message goes in as a value, never as the template, so braces in
    # user data cannot be taken for placeholders.
    return PydanticCustomError(code, "{message}", {"message": message})


def _caps(info: ValidationInfo) -> ModelCaps | None:
    model = info.data.get("model")
    return info.context.models.get(model) if model else None


class ManifestRow(BaseModel):
    """One accepted manifest row with every request parameter resolved."""

    row: int
    id: str
    model: str
    prompt: str
    size: str
    quality: str
    output_format: str
    output_compression: int | None = None
    background: str
    n: int
    reference_images: list[str] = []
    mask: str | None = None
    # After reference_images and size: its check needs both.
    moderation: str | None = None
    partition: dict[str, str] = {}
    metadata: dict[str, Any] = {}

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not v:
            raise _fail("missing", "id is empty")
        if len(v) > MAX_ID_CHARS:
            raise _fail("too_long", f"id is longer than {MAX_ID_CHARS} characters")
        if _has_control(v):
            raise _fail("control_chars", "id contains control characters")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str, info: ValidationInfo) -> str:
        v = v.strip()
        if v not in info.context.models:
            known = ", ".join(sorted(m for m, c in info.context.models.items() if not c.shut_down))
            raise _fail("unknown_model", f"unknown model {v!r}; known: {known}")
        if shut_down := info.context.models[v].shut_down:
            raise _fail("shut_down", f"model {v!r} was shut down on {shut_down}")
        return v

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str, info: ValidationInfo) -> str:
        if not v.strip():
            raise _fail("missing", "prompt is empty")
        caps = _caps(info)
        if caps and len(v) > caps.max_prompt_chars:
            raise _fail(
                "too_long",
                f"prompt has {len(v):,} characters, the model takes at most "
                f"{caps.max_prompt_chars:,}",
            )
        return v

    @field_validator("size")
    @classmethod
    def _size(cls, v: str, info: ValidationInfo) -> str:
        v = v.strip().lower()
        if dims := parse_size(v):
            v = f"{dims[0]}x{dims[1]}"  # 01024x1024 is 1024x1024, one asset_id
        caps = _caps(info)
        if caps and (problem := size_problem(v, caps)):
            raise _fail("bad_size", problem)
        return v

    @field_validator("quality")
    @classmethod
    def _quality(cls, v: str, info: ValidationInfo) -> str:
        return _one_of(v.strip().lower(), "quality", (c := _caps(info)) and c.qualities)

    @field_validator("output_format")
    @classmethod
    def _output_format(cls, v: str, info: ValidationInfo) -> str:
        v = v.strip().lower()
        v = "jpeg" if v == "jpg" else v
        return _one_of(v, "output_format", (c := _caps(info)) and c.output_formats)

    @field_validator("output_compression")
    @classmethod
    def _output_compression(cls, v: int | None, info: ValidationInfo) -> int | None:
        if v is None:
            return None
        if not 0 <= v <= 100:
            raise _fail("out_of_range", f"output_compression {v} is not between 0 and 100")
        fmt = info.data.get("output_format")
        if fmt is not None and fmt not in ("jpeg", "webp"):
            raise _fail(
                "needs_jpeg_or_webp", f"output_compression applies only to jpeg or webp, not {fmt}"
            )
        return v

    @field_validator("background")
    @classmethod
    def _background(cls, v: str, info: ValidationInfo) -> str:
        caps = _caps(info)
        v = _one_of(v.strip().lower(), "background", caps and caps.backgrounds)
        if v == "transparent":
            if caps and not caps.transparent_background:
                raise _fail("unsupported", "transparent background is not supported by this model")
            fmt = info.data.get("output_format")
            if fmt is not None and fmt not in ("png", "webp"):
                raise _fail(
                    "needs_png_or_webp", f"transparent background needs png or webp, not {fmt}"
                )
        return v

    @field_validator("moderation")
    @classmethod
    def _moderation(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return None
        v = v.strip().lower()
        caps = _caps(info)
        if caps and not caps.moderation:
            raise _fail("unsupported", f"model {info.data['model']!r} does not take moderation")
        v = _one_of(v, "moderation", caps and caps.moderation)
        # Multipart edits take no moderation; the JSON edit body does, in fewer sizes.
        size = info.data.get("size")
        edit = bool(info.data.get("reference_images"))
        if caps and v == "low" and edit and size and size not in caps.sizes.json_edit:
            raise _fail(
                "needs_json_edit_size",
                f"moderation low on an edit goes as the JSON edit body, which takes only "
                f"{', '.join(caps.sizes.json_edit)}, not {size}: use one of those sizes or "
                "leave moderation out",
            )
        return v

    @field_validator("n")
    @classmethod
    def _n(cls, v: int, info: ValidationInfo) -> int:
        caps = _caps(info)
        top = caps.max_n if caps else 10
        if not 1 <= v <= top:
            raise _fail("out_of_range", f"n {v} is not between 1 and {top}")
        return v

    @field_validator("reference_images", mode="before")
    @classmethod
    def _reference_images(cls, v: Any, info: ValidationInfo) -> list[str]:
        uris = _uri_list(v)
        caps = _caps(info)
        if caps and not caps.generations and not uris:
            raise _fail(
                "edits_only",
                f"model {info.data['model']!r} makes edits only: give reference images",
            )
        if caps and len(uris) > caps.max_reference_images:
            raise _fail(
                "too_many",
                f"{len(uris)} reference images, the model takes at most "
                f"{caps.max_reference_images}",
            )
        return uris

    @field_validator("mask")
    @classmethod
    def _mask(cls, v: str | None, info: ValidationInfo) -> str | None:
        # Absent from info.data when reference_images itself failed: that
        # reject says enough.
        if v is not None and info.data.get("reference_images") == []:
            raise _fail("needs_reference", "a mask needs at least one reference image")
        return v


def _one_of(value: str, column: str, allowed: list[str] | None) -> str:
    if allowed and value not in allowed:
        raise _fail("not_allowed", f"{column} {value!r} is not one of {', '.join(allowed)}")
    return value


# Unicode category Cc: the C0 controls, DEL and the C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _uri_list(value: Any) -> list[str]:
    """A list of URIs from a list, a JSON list or a `;`-separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError as e:
                raise _fail("bad_list", f"not a valid JSON list: {e}") from e
        else:
            value = text.split(";")
    if not isinstance(value, list | tuple) or not all(isinstance(u, str) for u in value):
        raise _fail("bad_list", "expected a list of URIs")
    return [u.strip() for u in value if u.strip()]


def _present(value: Any) -> bool:
    """CSV cannot tell null from empty, so an empty or blank cell means 'not given'."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def partition_problem(value: Any) -> str | None:
    """Why a partition value cannot become a folder name, or None."""
    if not _present(value):
        return "is empty"
    text = str(value)
    if text in (".", ".."):
        return f"{text!r} would leave its folder"
    if "/" in text or "\\" in text:
        return "contains a path separator"
    if _has_control(text):
        return "contains control characters"
    if len(text) > MAX_PARTITION_CHARS:
        return f"is longer than {MAX_PARTITION_CHARS} characters"
    if text != text.strip():
        return "has leading or trailing spaces"
    return None


def validate_row(raw: RawRow, ctx: RowContext) -> ManifestRow | list[Reject]:
    """Resolve defaults, render the prompt and check every column of one record."""
    fields = {k: v for k, v in raw.fields.items() if _present(v)}
    row_id = fields.get("id")
    row_id = str(row_id).strip() if row_id is not None else None
    rejects: list[Reject] = []

    def reject(column: str | None, code: str, reason: str) -> None:
        rejects.append(Reject(row=raw.number, id=row_id, column=column, code=code, reason=reason))

    data: dict[str, Any] = {"row": raw.number, "id": row_id or ""}
    defaults = ctx.config.defaults.model_dump()
    for column in REQUEST_COLUMNS:
        data[column] = fields.get(column, defaults[column])
    data["reference_images"] = fields.get("reference_images")
    mask = fields.get("mask")
    data["mask"] = str(mask).strip() if mask is not None else None

    template_failed = False
    if ctx.template is not None:
        try:
            data["prompt"] = ctx.template.render(fields)
        except TemplateError as e:
            template_failed = True
            reject(e.variable or "prompt_template", "template", str(e))
    elif "prompt" in fields:
        data["prompt"] = str(fields["prompt"])
    else:
        data["prompt"] = ""

    partition: dict[str, str] = {}
    for column in ctx.config.partition_by:
        value = fields.get(column)
        problem = partition_problem(value)
        if problem:
            reject(column, "bad_partition", f"partition value {problem}")
        else:
            partition[column] = str(value)
    data["partition"] = partition
    data["metadata"] = {
        k: _jsonable(v)
        for k, v in raw.fields.items()
        if k not in RESERVED_COLUMNS and k not in ctx.config.partition_by
    }

    try:
        row = ManifestRow.model_validate(data, context=ctx)
    except ValidationError as e:
        for err in e.errors(include_url=False):
            column = str(err["loc"][0]) if err["loc"] else None
            if column == "prompt" and template_failed:
                continue  # already reported with the missing variable
            reject(column, err["type"], err["msg"])
        return rejects
    return rejects or row


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)
