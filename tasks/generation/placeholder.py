"""An offline provider: deterministic local images, billed as the real model would bill them.

Its images arrive signed with a C2PA manifest as created by a trained
algorithm, as OpenAI's do, by a made-up generator nobody trusts (made_up_pki.py).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import math
import textwrap

import fsspec
from PIL import Image, ImageDraw, ImageFont, ImageOps

from assetgen.tasks.config.models import parse_size
from assetgen.tasks.generation.providers import ImageResult
from assetgen.tasks.plan.jobs import Job
from assetgen.tasks.plan.pricing import PriceTable, Usage, output_tokens
from assetgen.tasks.renditions.credentials import SigningMaterial, mime_of, sign_original
from assetgen.tasks.renditions.made_up_pki import TestPKI

GENERATOR = "assetgen placeholder generator"
AUTO_SIZE = "1024x1024"
AUTO_QUALITY = "medium"


class PlaceholderProvider:
    """Renders the prompt onto a colour field; no key, no network."""

    name = "placeholder"

    def __init__(self, prices: PriceTable, latency_s: float = 0.0) -> None:
        self._prices = prices
        self._latency_s = latency_s

    async def aclose(self) -> None:
        return None

    async def generate(self, job: Job) -> ImageResult:
        if self._latency_s:
            await asyncio.sleep(self._latency_s)
        size = AUTO_SIZE if job.size == "auto" else job.size
        quality = AUTO_QUALITY if job.quality == "auto" else job.quality
        image = await asyncio.to_thread(signed_render, job, size)
        return ImageResult(
            image=image,
            output_format=job.output_format,
            size=size,
            quality=quality,
            background="transparent" if job.background == "transparent" else "opaque",
            usage=self.usage(job, size, quality),
            request_id=f"placeholder-{job.asset_id[:12]}",
        )

    def usage(self, job: Job, size: str, quality: str) -> Usage:
        """Tokens the real model bills for this request (published tables, ~4 chars a token)."""
        pricing = self._prices.pricing(job.model)
        inputs = [*job.references, *([job.mask] if job.mask else [])]
        return Usage(
            text_input_tokens=math.ceil(len(job.prompt) / 4),
            image_input_tokens=sum(pricing.image_input.tokens(i.width, i.height) for i in inputs),
            output_tokens=math.ceil(output_tokens(pricing, size, quality).expected),
        )


@functools.cache
def generator() -> SigningMaterial:
    """The placeholder's own generator identity: made once per process, trusted by no one."""
    leaf = TestPKI("assetgen placeholder").leaf(GENERATOR, org="assetgen placeholder")
    return SigningMaterial(cert_chain=leaf.chain, alg=leaf.alg, private_key=leaf.key)


def signed_render(job: Job, size: str) -> bytes:
    """The job's image (see `render`), signed by the placeholder's generator."""
    return sign_original(generator(), render(job, size), mime_of(job.output_format), GENERATOR)


def render(job: Job, size: str) -> bytes:
    """The same job always gives the same bytes."""
    width, height = parse_size(size) or (1024, 1024)
    digest = hashlib.sha256(job.asset_id.encode()).digest()
    colour = (64 + digest[0] % 160, 64 + digest[1] % 160, 64 + digest[2] % 160)
    transparent = job.background == "transparent" and job.output_format != "jpeg"
    img = Image.new("RGBA" if transparent else "RGB", (width, height), (*colour, 255))
    draw = ImageDraw.Draw(img)
    if transparent:
        draw.rectangle((0, 0, width, height), fill=(0, 0, 0, 0))
        draw.ellipse((width // 8, height // 8, width * 7 // 8, height * 7 // 8), fill=colour)
    if job.references:
        _paste_reference(img, job.references[0].uri)
    font_px = max(12, min(width, height) // 24)
    font = ImageFont.load_default(size=font_px)
    text = textwrap.fill(job.prompt[:600], width=max(10, int(width / (font_px * 0.55))))
    draw.multiline_text(
        (font_px, font_px), text, font=font, fill=(255, 255, 255, 255), spacing=font_px // 3
    )
    draw.text(
        (font_px, height - 2 * font_px),
        f"placeholder · {job.model} · {size} · {job.quality} · {job.row_id}#{job.variant}",
        font=font,
        fill=(255, 255, 255, 255),
    )
    out = io.BytesIO()
    fmt = {"jpeg": "JPEG", "webp": "WEBP", "png": "PNG"}[job.output_format]
    img.save(out, fmt, **({"compress_level": 1} if fmt == "PNG" else {"quality": 90}))
    return out.getvalue()


def _paste_reference(img: Image.Image, uri: str) -> None:
    # Show the reference in a corner, so image-to-image demos look like it.
    with fsspec.open(uri, "rb") as f, Image.open(f) as ref:
        thumb = ImageOps.exif_transpose(ref).convert("RGB")
    thumb.thumbnail((img.width // 3, img.height // 3))
    img.paste(thumb, (img.width - thumb.width - 16, img.height - thumb.height - 48))
