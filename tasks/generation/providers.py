"""What every image provider offers the dispatcher, and how its failures are classed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from assetgen.tasks.plan.jobs import Job
from assetgen.tasks.plan.pricing import Usage


@dataclass
class ImageResult:
    """One generated image and what the provider said about it."""

    image: bytes
    output_format: str
    size: str
    quality: str | None
    background: str | None
    usage: Usage
    revised_prompt: str | None = None
    request_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


# transient: retry this request; row: final for this job only; run: stop
# dispatching for the whole run (no further request can succeed or is allowed).
ErrorScope = Literal["transient", "row", "run"]


class ProviderError(Exception):
    """A request that did not give an image, classed for the retry logic."""

    def __init__(
        self,
        scope: ErrorScope,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
        maybe_billed: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.scope = scope
        self.message = message
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s
        # True when the request may have reached the model and been billed
        # (timeout, connection dropped after sending): the budget keeps it.
        self.maybe_billed = maybe_billed
        self.headers = headers or {}

    @property
    def rate_limited(self) -> bool:
        return self.status == 429 and self.scope == "transient"

    def describe(self) -> str:
        """`429 rate_limit_exceeded: message` or just the message."""
        head = " ".join(str(p) for p in (self.status, self.code) if p)
        return f"{head}: {self.message}" if head else self.message


class Provider(Protocol):
    """Turns one job into one image."""

    name: str

    async def generate(self, job: Job) -> ImageResult:
        """Make the image of `job` or raise ProviderError."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
