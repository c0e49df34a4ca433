"""The job config's `publish:` section: where approved images go, under which keys, how served."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_LAYOUT = "{partition}/{row_id}/{rendition}.{ext}"
DEFAULT_CACHE_CONTROL = "public, max-age=86400"
# The feed changes with every publish that changes anything: caches ask again each time.
DEFAULT_FEED_CACHE_CONTROL = "no-cache"


class PublishConfig(BaseModel):
    """Defaults of `assetgen publish` (its flags override them)."""

    model_config = ConfigDict(extra="forbid")

    to: str | None = Field(None, description="destination URL: a folder, s3://bucket/prefix, ...")
    to_options: dict[str, Any] = Field(
        {}, description="fsspec options for the destination, e.g. S3 endpoint_url, key, secret"
    )
    base_url: str | None = Field(
        None, description="public URL of the destination, for the feed (default: its URL)"
    )
    layout: str = Field(
        DEFAULT_LAYOUT,
        description="key of each file: {partition}, {row_id}, {variant}, {rendition}, {ext}, "
        "{asset_id}, any partition key or metadata column",
    )
    renditions: list[str] | None = Field(None, description="None: every rendition an asset has")
    originals: bool = Field(False, description="publish the originals too (rendition 'original')")
    cache_control: str = Field(DEFAULT_CACHE_CONTROL, min_length=1)
    feed_cache_control: str = Field(DEFAULT_FEED_CACHE_CONTROL, min_length=1)
    prune: bool = Field(False, description="remove files of assets no longer approved")
