"""Job config: YAML files validated with pydantic, overridden by command-line flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from assetgen.tasks.config import CONFIG_DIR
from assetgen.tasks.config.base import ConfigError, StrictModel, format_validation_error, load_yaml
from assetgen.tasks.publish.config import PublishConfig
from assetgen.tasks.renditions.presets import Preset, load_presets, presets_relative_to_config

DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"


class RequestDefaults(StrictModel):
    """Request parameters for manifest rows that leave a column empty."""

    model: str = "gpt-image-2"
    size: str = "1024x1024"
    quality: str = "medium"
    output_format: str = "png"
    output_compression: int | None = None
    background: str = "auto"
    moderation: str | None = Field(
        None, description="low or auto (the API's default when not sent); see configs/models.yaml"
    )
    n: int = 1


class Limits(StrictModel):
    """Rate and retry limits for the provider."""

    ipm: float = Field(5, gt=0, description="images per minute")
    rpm: float | None = Field(None, gt=0, description="requests per minute; None: same as ipm")
    concurrency: int | None = Field(None, ge=1, description="requests in flight")
    max_attempts: int = Field(5, ge=1, description="tries per image, the first included")
    timeout_s: float = Field(300, gt=0, description="per request")
    backoff_base_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)


class BudgetConfig(StrictModel):
    """Spending caps in USD; None means no cap."""

    cap_usd: float | None = Field(None, ge=0, description="hard cap for one run")
    period: Literal["day", "month"] | None = None
    period_cap_usd: float | None = Field(
        None, ge=0, description="cap for all runs into the same store in the current period (UTC)"
    )

    @model_validator(mode="after")
    def _period_needs_both(self) -> BudgetConfig:
        if (self.period is None) != (self.period_cap_usd is None):
            raise ValueError("period and period_cap_usd go together")
        return self


class BatchConfig(StrictModel):
    """Batch API mode (`mode: batch`): how requests are split and how results are awaited."""

    # The API's limits per input file: 50,000 requests and 200 MB.
    max_requests: int = Field(50_000, ge=1, le=50_000, description="requests per batch")
    max_file_bytes: int = Field(
        200_000_000, ge=1024, le=200_000_000, description="bytes per input file"
    )
    poll_s: float = Field(60, gt=0, description="seconds between status checks with --wait")
    recover_after_s: float = Field(
        900,
        gt=0,
        description="a batch whose creation was cut short and is not found at OpenAI after "
        "this long is given up and its jobs planned again",
    )


class C2paConfig(StrictModel):
    """Signing material for the renditions' C2PA manifests (README: Provenance)."""

    cert_chain: str = Field(description="path or URI of a PEM certificate chain, leaf first")
    private_key: str = Field(description="path or URI of a PKCS#8 PEM private key")
    alg: Literal["es256", "es384", "ps256", "ed25519"] = "es256"
    timestamp_url: str | None = Field(None, description="an RFC 3161 time-stamp authority")


class ProvenanceConfig(StrictModel):
    """How renditions keep their provenance: the XMP mark always, C2PA when signing is set."""

    c2pa: C2paConfig | None = None


class ReviseConfig(StrictModel):
    """How `assetgen revise` makes a new version of a rejected asset."""

    how: Literal["prompt", "edit"] = Field(
        "edit",
        description="edit: the rejected image (and the row's reference images) with the "
        "reviewer's note as the instruction; prompt: the note added to the prompt",
    )
    max_revisions: int = Field(
        3, ge=0, description="revisions per slot; a rejected asset past this is reported, not sent"
    )


class JobConfig(StrictModel):
    """Everything one run needs besides the manifest."""

    defaults: RequestDefaults = RequestDefaults()
    prompt_template: str | None = None
    style_version: str | None = Field(
        None,
        min_length=1,
        description="a label for the look of a campaign; changing it re-generates every row "
        "under new asset_ids, keeping the old ones",
    )
    partition_by: list[str] = []
    renditions: list[str] = []
    presets: dict[str, Preset] = {}
    render_workers: int | None = Field(None, ge=1, description="rendition processes; None: cores")
    budget: BudgetConfig = BudgetConfig()
    provider: Literal["openai", "placeholder"] = "placeholder"
    store: str = "./assets"
    reference_roots: list[str] | None = Field(
        None,
        description="where reference images may come from, besides the manifest's folder; "
        "None: anywhere",
    )
    store_options: dict[str, Any] = Field(
        {}, description="fsspec options for the store, e.g. S3 endpoint_url, key, secret"
    )
    limits: Limits = Limits()
    mode: Literal["online", "batch"] = "online"
    batch: BatchConfig = BatchConfig()
    progress_log_s: float = Field(
        30, gt=0, description="seconds between progress log lines when no terminal shows them"
    )
    provenance: ProvenanceConfig = ProvenanceConfig()
    review: Literal["required", "off"] = Field(
        "required",
        description="required: every image waits for a reviewer's approval before it can be "
        "published; off: generated images count as approved (internal drafts)",
    )
    revise: ReviseConfig = ReviseConfig()
    publish: PublishConfig = PublishConfig()

    @field_validator("style_version", mode="before")
    @classmethod
    def _label(cls, v: Any) -> Any:
        # YAML reads `style_version: 2` as a number; it is a label all the same.
        return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _consistent(self) -> JobConfig:
        unknown = [name for name in self.renditions if name not in self.presets]
        if unknown:
            raise ValueError(f"renditions {unknown} have no preset; known: {sorted(self.presets)}")
        if self.mode == "batch" and self.provider != "openai":
            raise ValueError("mode batch goes through OpenAI's Batch API: it needs provider openai")
        return self


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_job_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> JobConfig:
    """Load the default config, a user config over it, then flag overrides.

    `overrides` uses dotted keys (`limits.ipm`); None values are ignored so
    flags the user did not give leave the config alone.
    """
    data = load_yaml(DEFAULT_CONFIG)
    if path is not None:
        # An image layer's relative uri is relative to this file's folder.
        data = _deep_merge(data, presets_relative_to_config(load_yaml(path), path))
    try:
        shipped = {k: v.model_dump() for k, v in load_presets().items()}
    except ValueError as e:
        raise ConfigError(str(e)) from e
    data["presets"] = {**shipped, **data.get("presets", {})}
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    try:
        return JobConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(str(path or DEFAULT_CONFIG), e)) from e
