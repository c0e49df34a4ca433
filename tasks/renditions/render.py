"""Renditions: one decoded original, many resized and re-encoded files.

`render_all` is what the pipeline runs in its process pool: it decodes the
original once (`prepare`: EXIF orientation applied, converted to sRGB, every
incoming metadata block dropped) and derives each preset from that image
(`render_one`). Outputs carry no metadata from the input; unless a preset
says `metadata: none`, they carry an sRGB colour tag and an XMP packet
marking them as AI-generated (IPTC digital source type
`trainedAlgorithmicMedia`, see provenance.py), which `read_provenance` reads
back.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageCms, ImageOps, PngImagePlugin

from assetgen.tasks.renditions.overlays import OverlayError, apply_overlays
from assetgen.tasks.renditions.presets import MAX_SIDE, Preset, check_name
from assetgen.tasks.renditions.provenance import provenance_xmp

EXTENSIONS = {"jpeg": "jpg", "webp": "webp", "png": "png", "avif": "avif"}
ALPHA_FORMATS = {"webp", "png", "avif"}
# Lanczos, with a cheap integer pre-reduction when shrinking by 3x or more:
# visually the same, several times faster on large reductions.
RESAMPLE = Image.Resampling.LANCZOS
REDUCING_GAP = 3.0
# max_bytes: lower the quality in these steps, never below the floor.
QUALITY_STEP = 5
QUALITY_FLOOR = 30


@dataclass(frozen=True)
class Rendered:
    """One encoded rendition. `quality` is None for png (lossless)."""

    name: str
    data: bytes
    width: int
    height: int
    format: str
    extension: str
    quality: int | None
    note: str | None = None
    credentials: str | None = None  # "signed": it carries a C2PA manifest (signing.py)
    error: str | None = None  # it could not be made (an overlay): no data, nothing to store
    # What was drawn on it, one JSON-able record per overlay layer (overlays.apply_overlays):
    # the sidecar and the catalog keep them, signing names them as a c2pa.placed action.
    overlays: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------- decode


def _fixed_date_profile(profile: ImageCms.ImageCmsProfile) -> bytes:
    """lcms stamps profiles with the current time: pin it so outputs are reproducible."""
    data = bytearray(profile.tobytes())
    data[24:36] = struct.pack(">6H", 2000, 1, 1, 0, 0, 0)
    data[84:100] = bytes(16)  # profile ID: "not computed"
    return bytes(data)


_SRGB = ImageCms.createProfile("sRGB")
SRGB_ICC = _fixed_date_profile(ImageCms.ImageCmsProfile(_SRGB))


def _to_srgb(im: Image.Image, icc: bytes) -> Image.Image:
    """Convert through the embedded profile; an unusable profile is treated as sRGB."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        transform = ImageCms.buildTransform(
            source,
            _SRGB,
            im.mode,
            "RGBA" if im.mode == "RGBA" else "RGB",
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
            flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
        )
        return ImageCms.applyTransform(im, transform)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return im


def _rgb_or_rgba(im: Image.Image) -> Image.Image:
    """RGB, or RGBA when the image has transparency."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # Pillow's I;16 -> L clips instead of scaling: scale 16 bits down first.
        im = im.convert("I").point(lambda v: v * (1 / 257)).convert("L")
        mode = "L"
    if mode == "F":
        im = im.point(lambda v: v * 255).convert("L")
        mode = "L"
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info
    if has_alpha:
        return im if mode == "RGBA" else im.convert("RGBA")
    return im if mode == "RGB" else im.convert("RGB")


def _drop_opaque_alpha(im: Image.Image) -> Image.Image:
    if im.mode == "RGBA" and im.getchannel("A").getextrema() == (255, 255):
        return im.convert("RGB")
    return im


def prepare(original: bytes) -> Image.Image:
    """Decode once: EXIF orientation applied, sRGB, RGB or RGBA, no metadata kept."""
    im = Image.open(io.BytesIO(original))
    im.load()
    icc = im.info.get("icc_profile")
    ImageOps.exif_transpose(im, in_place=True)
    if im.mode not in ("RGB", "RGBA", "L", "CMYK") or "transparency" in im.info:
        im = _rgb_or_rgba(im)
    if icc:
        im = _to_srgb(im, icc)
    im = _drop_opaque_alpha(_rgb_or_rgba(im))
    im.info = {}
    return im


# ---------------------------------------------------------------- geometry


@dataclass(frozen=True)
class _Plan:
    size: tuple[int, int]  # the resized image
    box: tuple[float, float, float, float] | None  # source crop (cover), None: whole image
    canvas: tuple[int, int] | None  # pad: the canvas, image centred on it
    shrunk: bool  # the preset asked for more than the original without enlarging


def _dim(v: float) -> int:
    return max(1, min(MAX_SIDE, round(v)))


def _plan(w: int, h: int, p: Preset) -> _Plan:
    if p.long_edge is not None:
        s = p.long_edge / max(w, h)
        if s > 1 and not p.upscale:
            return _Plan((w, h), None, None, True)
        return _Plan((_dim(w * s), _dim(h * s)), None, None, False)
    assert p.width is not None and p.height is not None
    bw, bh = p.width, p.height
    if p.fit == "contain":
        s = min(bw / w, bh / h)
        if s > 1 and not p.upscale:
            return _Plan((w, h), None, None, True)
        return _Plan((min(bw, _dim(w * s)), min(bh, _dim(h * s))), None, None, False)
    if p.fit == "pad":
        s = min(bw / w, bh / h)
        shrunk = s > 1 and not p.upscale
        if shrunk:  # keep the box's shape around the unscaled image
            return _Plan((w, h), None, (max(w, _dim(bw / s)), max(h, _dim(bh / s))), True)
        size = (min(bw, _dim(w * s)), min(bh, _dim(h * s)))
        return _Plan(size, None, (bw, bh), False)
    # cover: the largest box-shaped window around the focal point
    s = max(bw / w, bh / h)
    shrunk = s > 1 and not p.upscale
    if shrunk:
        tw, th = min(w, _dim(bw / s)), min(h, _dim(bh / s))
        s = 1.0
    else:
        tw, th = bw, bh
    cw, ch = min(w, tw / s), min(h, th / s)
    fx, fy = p.focal
    x0 = min(max(fx * w - cw / 2, 0.0), w - cw)
    y0 = min(max(fy * h - ch / 2, 0.0), h - ch)
    if s == 1:  # a plain crop: whole pixels, no resampling
        x0, y0 = round(x0), round(y0)
    return _Plan((tw, th), (x0, y0, x0 + cw, y0 + ch), None, shrunk)


def _resize(im: Image.Image, size: tuple[int, int], box: Any) -> Image.Image:
    if box is None or box == (0, 0, *im.size):
        if size == im.size:
            return im
    elif all(float(c).is_integer() for c in box) and (box[2] - box[0], box[3] - box[1]) == size:
        return im.crop(tuple(int(c) for c in box))
    return im.resize(size, RESAMPLE, box=box, reducing_gap=REDUCING_GAP)


def _shape(im: Image.Image, p: Preset) -> tuple[Image.Image, bool]:
    """Resize/crop/pad; flatten onto the background where the format has no alpha."""
    plan = _plan(im.width, im.height, p)
    out = _resize(im, plan.size, plan.box)
    bg = p.background_rgba()
    keeps_alpha = p.format in ALPHA_FORMATS
    if plan.canvas is not None:
        transparent_bg = keeps_alpha and bg[3] < 255
        canvas = Image.new(
            "RGBA" if transparent_bg else "RGB", plan.canvas, bg if transparent_bg else bg[:3]
        )
        pos = ((plan.canvas[0] - out.width) // 2, (plan.canvas[1] - out.height) // 2)
        if out.mode == "RGBA" and canvas.mode == "RGBA":
            canvas.alpha_composite(out, pos)
        else:
            canvas.paste(out, pos, out if out.mode == "RGBA" else None)
        out = canvas
    elif out.mode == "RGBA" and not keeps_alpha:
        flat = Image.new("RGB", out.size, bg[:3])
        flat.paste(out, (0, 0), out)
        out = flat
    if out.mode == "RGBA":
        out = _drop_opaque_alpha(out)
    return out, plan.shrunk


# ---------------------------------------------------------------- encode


_XMP = provenance_xmp()


def _encode(im: Image.Image, p: Preset, quality: int, png_level: int = 6) -> bytes:
    """Encode with the preset's format and metadata policy; nothing from `im.info`."""
    kw: dict[str, Any] = {}
    meta = p.metadata == "provenance"
    if p.format == "png":
        kw["compress_level"] = png_level
        if meta:  # the sRGB chunk says it in 13 bytes, the profile takes 600
            info = PngImagePlugin.PngInfo()
            info.add(b"sRGB", b"\x00")
            info.add_itxt("XML:com.adobe.xmp", _XMP.decode("utf-8"), zip=False)
            kw["pnginfo"] = info
    else:
        kw["quality"] = quality
        if p.format == "jpeg":
            kw.update(optimize=True, progressive=True)
        elif p.format == "webp":
            kw["method"] = 4
        if meta:
            kw.update(icc_profile=SRGB_ICC, xmp=_XMP)
    im.info = {}  # encoders fall back on im.info for some blocks: give them none
    buf = io.BytesIO()
    im.save(buf, p.format.upper(), **kw)
    return buf.getvalue()


def _encode_within(im: Image.Image, p: Preset) -> tuple[bytes, int | None, str | None]:
    """Encode at the preset quality, or the highest lower quality under max_bytes."""
    if p.format == "png":
        data = _encode(im, p, p.quality)
        if p.max_bytes is not None and len(data) > p.max_bytes:
            data = min(data, _encode(im, p, p.quality, png_level=9), key=len)
            if len(data) > p.max_bytes:
                note = f"max_bytes {p.max_bytes} not met: {len(data)} bytes (png is lossless)"
                return data, None, note
        return data, None, None
    data = _encode(im, p, p.quality)
    if p.max_bytes is None or len(data) <= p.max_bytes:
        return data, p.quality, None
    floor = min(QUALITY_FLOOR, p.quality)
    steps = list(range(p.quality - QUALITY_STEP, floor, -QUALITY_STEP))
    if floor < p.quality:
        steps.append(floor)
    # Sizes fall with quality: binary search for the highest step that fits.
    best: tuple[bytes, int] | None = None
    smallest = (data, p.quality)
    lo, hi = 0, len(steps) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        attempt = _encode(im, p, steps[mid])
        if len(attempt) < len(smallest[0]):
            smallest = (attempt, steps[mid])
        if len(attempt) <= p.max_bytes:
            best = (attempt, steps[mid])
            hi = mid - 1
        else:
            lo = mid + 1
    if best is not None:
        return best[0], best[1], None
    data, q = smallest
    note = f"max_bytes {p.max_bytes} not met: smallest is {len(data)} bytes at quality {q}"
    return data, q, note


# ---------------------------------------------------------------- render


def render_one(
    image: Image.Image,
    name: str,
    preset: Preset,
    values: dict[str, Any] | None = None,
    row: str | None = None,
) -> Rendered:
    """One rendition from a prepared image (see `prepare`); the image is not changed.

    `values` are the asset's manifest columns, for the preset's overlays;
    an overlay that cannot be drawn correctly raises OverlayError.
    """
    check_name(name)
    if image.mode not in ("RGB", "RGBA"):
        image = _rgb_or_rgba(image)
    out, shrunk = _shape(image, preset)
    drawn: list[dict[str, Any]] = []
    if preset.overlays:
        out = apply_overlays(
            out,
            name,
            preset.overlays,
            preset.safe_area,
            values,
            preset.locale_column,
            row,
            drawn=drawn,
        )
        _with_params(drawn, preset.overlays)
    if out is image and image.info:
        out = image.copy()  # the encoder clears `info`: not on the caller's image
    data, quality, note = _encode_within(out, preset)
    if shrunk:
        what = f"not enlarged: original is {image.width}x{image.height} (upscale: false)"
        note = f"{what}; {note}" if note else what
    return Rendered(
        name=name,
        data=data,
        width=out.width,
        height=out.height,
        format=preset.format,
        extension=EXTENSIONS[preset.format],
        quality=quality,
        note=note,
        overlays=drawn,
    )


def _with_params(drawn: list[dict[str, Any]], layers: list[Any]) -> None:
    """Each record with its layer's configured parameters: what the preset asked for
    beside what was drawn, so a record says everything without the preset at hand."""
    params = {layer.label(i): layer.model_dump(mode="json") for i, layer in enumerate(layers)}
    for record in drawn:
        record.setdefault("params", params.get(record["layer"]))


def render_all(
    original: bytes,
    presets: dict[str, Preset],
    values: dict[str, Any] | None = None,
    row: str | None = None,
) -> list[Rendered]:
    """Every preset from one decode of `original`, in the presets' order.

    A preset whose overlays cannot be drawn comes back with `error` set and
    no data; the others are made all the same.
    """
    image = prepare(original)
    out = []
    for name, preset in presets.items():
        try:
            out.append(render_one(image, name, preset, values, row))
        except OverlayError as e:
            out.append(_failed(name, preset, str(e)))
    return out


def _failed(name: str, preset: Preset, error: str) -> Rendered:
    return Rendered(
        name=name,
        data=b"",
        width=0,
        height=0,
        format=preset.format,
        extension=EXTENSIONS[preset.format],
        quality=None,
        error=error,
    )
