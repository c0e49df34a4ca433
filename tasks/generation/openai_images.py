"""The OpenAI Images API through the official SDK, with its own retries off."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import fsspec
import openai
from openai._constants import RAW_RESPONSE_HEADER
from openai.types import ImagesResponse
from PIL import Image

from assetgen.tasks.generation.providers import ImageResult, ProviderError
from assetgen.tasks.plan.jobs import InputImage, Job
from assetgen.tasks.plan.pricing import Usage

# Codes that mean no further request of this run can be paid for or allowed.
RUN_STOPPING_CODES = frozenset(
    {
        "insufficient_quota",
        "billing_hard_limit_reached",
        "billing_not_active",
        "access_terminated",
        "invalid_api_key",
        "model_not_found",
    }
)
# Camera JPEGs open as "MPO" in Pillow.
MIME = {"png": "image/png", "jpeg": "image/jpeg", "mpo": "image/jpeg", "webp": "image/webp"}


class OpenAIProvider:
    """`images.generate` for text-to-image, `images.edit` when a job has references."""

    name = "openai"

    def __init__(self, *, timeout_s: float, client: openai.AsyncOpenAI | None = None) -> None:
        # One retry layer: ours. The SDK would otherwise retry 429s, including
        # insufficient_quota, on its own.
        self._client = client or openai.AsyncOpenAI(max_retries=0, timeout=timeout_s)

    async def aclose(self) -> None:
        await self._client.close()

    async def generate(self, job: Job) -> ImageResult:
        params: dict[str, Any] = {"model": job.model, "prompt": job.prompt, "n": 1}
        params |= {k: v for k, v in job.params.items() if v is not None}
        try:
            if job.references and job.moderation == "low":
                raw = await self._json_edit(job, params)
            elif job.references:
                # Multipart: the form that takes every size; it has no moderation.
                params.pop("moderation", None)
                files = await asyncio.gather(*(_fetch(ref) for ref in job.references))
                if job.mask is not None:
                    params["mask"] = await _fetch(job.mask)
                raw = await self._client.images.with_raw_response.edit(image=files, **params)
            else:
                raw = await self._client.images.with_raw_response.generate(**params)
            response = raw.parse()
        except openai.APIStatusError as e:
            raise status_error(e) from None
        except openai.APITimeoutError:
            raise ProviderError(
                "transient", "request timed out", code="timeout", maybe_billed=True
            ) from None
        except openai.APIConnectionError as e:
            raise ProviderError(
                "transient",
                f"connection failed: {type(e.__cause__).__name__ if e.__cause__ else e}",
                code="connection_error",
                maybe_billed=not _never_sent(e),
            ) from None
        # Decoding a whole image is CPU work: off the dispatch loop.
        return await asyncio.to_thread(
            image_result, response, job, raw.request_id, dict(raw.headers.items())
        )

    async def _json_edit(self, job: Job, params: dict[str, Any]) -> Any:
        """An edit as the JSON body (EditImageBodyJsonParam): the form that takes `moderation`.

        Images travel inline as data URLs (the plan keeps them under the
        description's size limit). The SDK has no typed method for this form:
        its generic POST, with the raw-response header its typed methods use.
        """
        images = await asyncio.gather(*(_fetch(ref) for ref in job.references))
        body = {**params, "images": [{"image_url": _data_url(image)} for image in images]}
        if job.mask is not None:
            body["mask"] = {"image_url": _data_url(await _fetch(job.mask))}
        return await self._client.post(
            "/images/edits",
            cast_to=ImagesResponse,
            body=body,
            options={"headers": {RAW_RESPONSE_HEADER: "true"}},
        )


def _data_url(upload: tuple[str, bytes, str]) -> str:
    _, data, mime = upload
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def image_result(
    response: ImagesResponse,
    job: Job,
    request_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ImageResult:
    """The image of an Images API response (online or a batch output line), checked whole."""
    if not response.data or not response.data[0].b64_json:
        raise ProviderError("row", "response has no image data", maybe_billed=True)
    expected = None if job.size == "auto" else job.size
    image = _decode(response.data[0].b64_json, expected)
    return ImageResult(
        image=image,
        output_format=response.output_format or job.output_format,
        size=response.size or job.size,
        quality=response.quality,
        background=response.background,
        usage=usage_of(response),
        revised_prompt=response.data[0].revised_prompt,
        request_id=request_id,
        headers=headers or {},
    )


def usage_of(response: ImagesResponse) -> Usage:
    """The tokens a response says were billed, split as the API splits them."""
    usage = response.usage
    if usage is None:
        return Usage()
    details, out = usage.input_tokens_details, usage.output_tokens_details
    return Usage(
        text_input_tokens=details.text_tokens if details else usage.input_tokens,
        image_input_tokens=details.image_tokens if details else 0,
        output_tokens=usage.output_tokens,
        text_output_tokens=out.text_tokens if out else 0,
    )


def _decode(b64: str, expected_size: str | None) -> bytes:
    """Base64 to image bytes, refusing anything that is not a whole image of the asked size.

    These answers were billed; they fail their row rather than retry, since a
    retry would be billed again for what is most likely the same answer.
    """
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ProviderError("row", f"invalid base64 image: {e}", maybe_billed=True) from None
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # the whole image: a truncated file fails here
            got = f"{img.width}x{img.height}"
    except Exception as e:  # PIL raises many types for broken files
        raise ProviderError("row", f"undecodable image: {e}", maybe_billed=True) from None
    if expected_size and got != expected_size:
        raise ProviderError(
            "row", f"image is {got}, {expected_size} was asked for", maybe_billed=True
        )
    return data


async def _fetch(ref: InputImage) -> tuple[str, bytes, str]:
    return await asyncio.to_thread(read_reference, ref)


def read_reference(ref: InputImage) -> tuple[str, bytes, str]:
    """Reference bytes as an upload (name, bytes, mime), checked against the planned hash."""
    try:
        with fsspec.open(ref.uri, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ProviderError("row", f"cannot read {ref.uri}: {e}") from None
    if hashlib.sha256(data).hexdigest() != ref.sha256:
        raise ProviderError("row", f"{ref.uri} changed since it was planned; plan again")
    with Image.open(io.BytesIO(data)) as img:
        fmt = (img.format or "png").lower()
    name = ref.uri.rstrip("/").rsplit("/", 1)[-1] or "image"
    return name, data, MIME.get(fmt, "image/png")


def status_error(e: openai.APIStatusError) -> ProviderError:
    """An API error answer, classed like every other provider failure."""
    status = e.status_code
    code = e.code if isinstance(e.code, str) else None
    headers = dict(e.response.headers.items())
    message = _message(e)
    if code in RUN_STOPPING_CODES or status in (401, 403, 404):
        scope = "run"
    elif status in (408, 409, 429) or status >= 500:
        scope = "transient"
    else:
        scope = "row"
    return ProviderError(
        scope,
        message,
        status=status,
        code=code,
        retry_after_s=retry_after(headers),
        headers=headers,
    )


# OpenAI echoes (part of) a wrong key in its 401 message; keys never go
# into our logs, sidecars, catalog or reports.
_KEY_LIKE = re.compile(r"\b(sk|sess|rk)-[A-Za-z0-9_\-*.]{6,}")


def redact(text: str) -> str:
    """`text` with anything shaped like an API key replaced by `sk-***`."""
    return _KEY_LIKE.sub(lambda m: f"{m[1]}-***", text)


def _message(e: openai.APIStatusError) -> str:
    body = e.body
    message = e.message
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            message = err["message"]
    return redact(message)


def _never_sent(e: openai.APIConnectionError) -> bool:
    # A refused or failed connect cannot have reached the model.
    return e.__cause__ is not None and "Connect" in type(e.__cause__).__name__


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, then `retry-after`)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if (ms := lowered.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    if (value := lowered.get("retry-after")) is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                return None
    return None
