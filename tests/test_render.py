"""Renditions: geometry, colour, orientation, alpha, size caps, metadata, presets."""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import pytest
from PIL import Image, ImageCms, ImageDraw

from assetgen.tasks.renditions import presets, render
from assetgen.tasks.renditions.presets import Preset, avif_supported, load_presets
from assetgen.tasks.renditions.provenance import PROVENANCE_URI, provenance_xmp, read_provenance
from assetgen.tasks.renditions.render import Rendered, prepare, render_all, render_one

FORMATS = ["jpeg", "webp", "png"] + (["avif"] if avif_supported() else [])
PIL_NAMES = {"jpeg": "JPEG", "webp": "WEBP", "png": "PNG", "avif": "AVIF"}
MARKER = "ORIGINAL-METADATA-MARKER-7f3a"


def encode(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def content(w: int, h: int) -> Image.Image:
    """Gradients, a shape and a little noise: something like a real picture."""
    im = Image.merge(
        "RGB",
        [
            Image.linear_gradient("L").resize((w, h)),
            Image.radial_gradient("L").resize((w, h)),
            Image.effect_noise((w, h), 20),
        ],
    )
    ImageDraw.Draw(im).ellipse((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill=(200, 60, 40))
    return im


def halves(w: int, h: int, left: tuple, right: tuple, mode: str = "RGB") -> Image.Image:
    im = Image.new(mode, (w, h), left)
    im.paste(right, (w // 2, 0, w, h))
    return im


def close(a: tuple, b: tuple, tol: int = 12) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


# ---------------------------------------------------------------- geometry

ASPECTS = {
    "square": (1024, 1024),
    "wide": (1536, 1024),
    "tall": (1024, 1536),
    "extreme": (1536, 512),
}
BOXES = {"square": (200, 200), "wide": (300, 150), "tall": (150, 300)}


@pytest.fixture(scope="module")
def originals() -> dict[str, Image.Image]:
    return {k: content(w, h) for k, (w, h) in ASPECTS.items()}


@pytest.mark.parametrize("aspect", ASPECTS)
@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("fit", ["contain", "cover", "pad"])
def test_geometry(originals, aspect, box, fit):
    w, h = ASPECTS[aspect]
    bw, bh = BOXES[box]
    r = render_one(originals[aspect], "x", Preset(width=bw, height=bh, fit=fit, format="png"))
    out = decode(r.data)
    assert out.size == (r.width, r.height)
    if fit == "contain":
        assert r.width <= bw and r.height <= bh
        assert r.width == bw or r.height == bh
        assert abs(r.width / r.height - w / h) < 0.02 * w / h + 1 / min(r.width, r.height)
    else:
        assert (r.width, r.height) == (bw, bh)
    assert r.note is None


@pytest.mark.parametrize("aspect", ASPECTS)
@pytest.mark.parametrize("edge", [100, 512])
def test_long_edge(originals, aspect, edge):
    w, h = ASPECTS[aspect]
    for fit in ("contain", "cover"):  # fit does not matter with long_edge
        r = render_one(originals[aspect], "x", Preset(long_edge=edge, fit=fit))
        assert max(r.width, r.height) == edge
        assert min(r.width, r.height) == round(min(w, h) * edge / max(w, h))


def test_cover_keeps_the_focal_point():
    original = halves(400, 200, (255, 0, 0), (0, 0, 255))
    for focal, colour in (((0.0, 0.5), (255, 0, 0)), ((1.0, 0.5), (0, 0, 255))):
        p = Preset(width=100, height=100, fit="cover", focal=focal, format="png")
        out = decode(render_one(original, "x", p).data).convert("RGB")
        for xy in ((5, 5), (50, 50), (95, 95), (5, 95)):
            assert close(out.getpixel(xy), colour, 2), (focal, xy)
    centre = decode(render_one(original, "x", Preset(width=100, height=100, fit="cover")).data)
    assert close(centre.convert("RGB").getpixel((5, 50)), (255, 0, 0))
    assert close(centre.convert("RGB").getpixel((95, 50)), (0, 0, 255))


def test_pad_fills_the_borders_with_the_background():
    original = Image.new("RGB", (300, 100), (0, 200, 0))
    p = Preset(width=100, height=100, fit="pad", background="#ff0000", format="png")
    out = decode(render_one(original, "x", p).data).convert("RGB")
    assert out.size == (100, 100)
    assert out.getpixel((50, 0)) == (255, 0, 0)  # top band
    assert out.getpixel((50, 99)) == (255, 0, 0)  # bottom band
    assert close(out.getpixel((50, 50)), (0, 200, 0), 2)
    tall = decode(render_one(original.rotate(90, expand=True), "x", p).data).convert("RGB")
    assert tall.getpixel((0, 50)) == (255, 0, 0) and tall.getpixel((99, 50)) == (255, 0, 0)
    jpeg = p.model_copy(update={"format": "jpeg"})
    out = decode(render_one(original, "x", jpeg).data)
    assert close(out.getpixel((50, 2)), (255, 0, 0)) and close(out.getpixel((50, 50)), (0, 200, 0))


def test_nothing_is_enlarged_unless_asked():
    small = content(200, 100)
    cases = [
        (Preset(width=400, height=400, fit="contain"), (200, 100)),
        (Preset(width=400, height=400, fit="cover"), (100, 100)),  # box shape kept
        (Preset(width=400, height=400, fit="pad"), (200, 200)),
        (Preset(width=600, height=300, fit="pad"), (200, 100)),
        (Preset(long_edge=1000), (200, 100)),
    ]
    for p, size in cases:
        r = render_one(small, "x", p)
        assert (r.width, r.height) == size, p
        assert "not enlarged" in (r.note or "")
        big = render_one(small, "x", p.model_copy(update={"upscale": True}))
        assert max(big.width, big.height) > 200 and big.note is None
    # cover without enlarging is a plain crop around the focal point
    crop = render_one(small, "x", Preset(width=400, height=400, fit="cover", format="png"))
    assert decode(crop.data).convert("RGB").tobytes() == small.crop((50, 0, 150, 100)).tobytes()


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_with_its_quality(fmt):
    original = content(240, 160)
    hi = render_one(original, "x", Preset(long_edge=200, format=fmt, quality=95))
    lo = render_one(original, "x", Preset(long_edge=200, format=fmt, quality=30))
    assert decode(hi.data).format == PIL_NAMES[fmt]
    assert hi.format == fmt and hi.extension == render.EXTENSIONS[fmt]
    assert (hi.width, hi.height) == (200, 133)
    if fmt == "png":
        assert hi.quality is None and hi.data == lo.data  # lossless: quality does not apply
    else:
        assert (hi.quality, lo.quality) == (95, 30)
        assert len(lo.data) < len(hi.data)


def test_avif_is_refused_where_pillow_lacks_it(monkeypatch):
    monkeypatch.setattr(presets, "avif_supported", lambda: False)
    with pytest.raises(ValueError, match="avif"):
        Preset(long_edge=10, format="avif")


# ---------------------------------------------------------------- colour


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz(v: tuple[float, float, float]) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15(c) for c in v)


D50 = (0.9642, 1.0, 0.8249)
# Display P3 primaries, chromatically adapted to D50 (as in Apple's profile).
P3 = (
    (0.515102, 0.241196, -0.001053),
    (0.291965, 0.692245, 0.041884),
    (0.157153, 0.066574, 0.784078),
)
# sRGB primaries adapted to D50 (lcms's built-in sRGB).
SRGB = (
    (0.436066, 0.222488, 0.013916),
    (0.385147, 0.716873, 0.097076),
    (0.143066, 0.060608, 0.714096),
)


def matrix_profile(primaries, gamma: float = 2.2) -> bytes:
    """A minimal ICC v2 RGB matrix/TRC display profile."""
    name = b"wide gamut (test)\0"
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)
    tags = [
        (b"desc", b"desc" + bytes(4) + struct.pack(">I", len(name)) + name + bytes(78)),
        (b"cprt", b"text" + bytes(4) + b"none\0"),
        (b"wtpt", _xyz(D50)),
        (b"rXYZ", _xyz(primaries[0])),
        (b"gXYZ", _xyz(primaries[1])),
        (b"bXYZ", _xyz(primaries[2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += bytes(-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = (
        struct.pack(">I", offset + len(body))
        + b"lcms"
        + bytes([2, 0x10, 0, 0])
        + b"mntrRGB XYZ "
        + bytes(12)
        + b"acsp"
        + bytes(28)  # platform, flags, device, attributes, intent
        + b"".join(_s15(c) for c in D50)
        + bytes(48)
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def _inverse(m):
    (a, b, c), (d, e, f), (g, h, i) = m
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    return [
        [(e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det],
        [(f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det],
        [(d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det],
    ]


def expected_srgb(rgb: tuple[int, int, int], primaries) -> tuple[int, ...]:
    """The same conversion by hand: gamma 2.2 -> XYZ (D50) -> linear sRGB -> sRGB curve."""
    lin = [(c / 255) ** 2.2 for c in rgb]
    xyz = [sum(primaries[j][i] * lin[j] for j in range(3)) for i in range(3)]
    to_srgb = _inverse([[SRGB[j][i] for j in range(3)] for i in range(3)])
    out = [min(1.0, max(0.0, sum(to_srgb[i][j] * xyz[j] for j in range(3)))) for i in range(3)]
    enc = [12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055 for v in out]
    return tuple(round(v * 255) for v in enc)


def test_wide_gamut_input_is_converted_to_srgb():
    icc = matrix_profile(P3)
    assert "wide gamut" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    colours = [(100, 180, 100), (200, 100, 50), (0, 128, 0), (0, 255, 0)]
    original = Image.new("RGB", (len(colours), 1))
    for x, c in enumerate(colours):
        original.putpixel((x, 0), c)
    prepared = prepare(encode(original, icc_profile=icc))
    assert prepared.mode == "RGB" and "icc_profile" not in prepared.info
    got = [prepared.getpixel((x, 0)) for x in range(len(colours))]
    for colour, value in zip(colours, got, strict=True):
        assert close(value, expected_srgb(colour, P3), 3), (colour, value)
    # In-gamut P3 colours move visibly; P3's pure green lies outside sRGB and clips
    # to sRGB's own most saturated green.
    assert not close(got[0], colours[0], 20) and not close(got[1], colours[1], 10)
    assert got[3] == (0, 255, 0)
    # The output says sRGB, not the input's profile.
    out = decode(render_one(prepared, "x", Preset(long_edge=4, format="jpeg")).data)
    profile = ImageCms.ImageCmsProfile(io.BytesIO(out.info["icc_profile"]))
    assert "sRGB" in ImageCms.getProfileDescription(profile)
    rgba = original.convert("RGBA")
    rgba.putalpha(100)
    prepared = prepare(encode(rgba, icc_profile=icc))
    assert prepared.mode == "RGBA" and prepared.getpixel((0, 0))[3] == 100
    assert close(prepared.getpixel((0, 0))[:3], got[0], 1)


def test_a_broken_profile_is_ignored():
    prepared = prepare(encode(Image.new("RGB", (4, 4), (10, 20, 30)), icc_profile=b"junk" * 40))
    assert prepared.getpixel((0, 0)) == (10, 20, 30)


# ---------------------------------------------------------------- orientation, alpha


def test_exif_orientation_is_applied():
    original = halves(300, 200, (255, 0, 0), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    prepared = prepare(encode(original, "JPEG", exif=exif.tobytes(), quality=95))
    assert prepared.size == (200, 300)
    assert close(prepared.getpixel((100, 20)), (255, 0, 0), 30)  # the left half is now on top
    assert close(prepared.getpixel((100, 280)), (0, 0, 255), 30)
    [r] = render_all(encode(original, "JPEG", exif=exif.tobytes()), {"x": Preset(long_edge=150)})
    assert (r.width, r.height) == (100, 150)
    assert 0x0112 not in decode(r.data).getexif()


def test_transparency_is_flattened_for_jpeg_and_kept_elsewhere():
    original = halves(100, 100, (0, 0, 0, 0), (0, 0, 255, 255), "RGBA")
    prepared = prepare(encode(original))
    assert prepared.mode == "RGBA"
    for fmt in FORMATS:
        p = Preset(width=50, height=50, fit="contain", background="#00ff00", format=fmt)
        out = decode(render_one(prepared, "x", p).data)
        if fmt == "jpeg":
            assert out.mode == "RGB"
            assert close(out.getpixel((5, 25)), (0, 255, 0)) and close(
                out.getpixel((45, 25)), (0, 0, 255)
            )
        else:
            assert out.mode == "RGBA", fmt
            assert out.getpixel((5, 25))[3] == 0 and out.getpixel((45, 25))[3] == 255
    # pad places the image on its background: opaque, unless the background is transparent
    pad = Preset(width=50, height=25, fit="pad", format="png")
    assert decode(render_one(prepared, "x", pad).data).mode == "RGB"
    clear = pad.model_copy(update={"background": "#ffffff00"})
    out = decode(render_one(prepared, "x", clear).data)
    assert out.mode == "RGBA" and out.getpixel((2, 12))[3] == 0 and out.getpixel((30, 12))[3] == 255


def test_opaque_alpha_and_odd_modes_become_rgb():
    assert prepare(encode(Image.new("RGBA", (8, 8), (1, 2, 3, 255)))).mode == "RGB"
    assert prepare(encode(Image.new("L", (8, 8), 128))).getpixel((0, 0)) == (128,) * 3
    gray16 = Image.new("I;16", (8, 8), 32896)
    assert prepare(encode(gray16)).getpixel((0, 0)) == (128,) * 3
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([9, 8, 7] * 256)
    assert prepare(encode(palette, transparency=0)).mode == "RGBA"
    assert prepare(encode(Image.new("CMYK", (8, 8), (0, 0, 0, 0)), "JPEG")).mode == "RGB"


# ---------------------------------------------------------------- size cap


@pytest.fixture(scope="module")
def noisy() -> Image.Image:
    return Image.merge("RGB", [Image.effect_noise((400, 400), 80) for _ in range(3)])


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_max_bytes_lowers_the_quality_until_it_fits(noisy, fmt):
    p = Preset(width=400, height=400, format=fmt, quality=90)
    full = render_one(noisy, "x", p)
    floor = render_one(noisy, "x", p.model_copy(update={"quality": 30}))
    cap = (len(full.data) + len(floor.data)) // 2
    capped = render_one(noisy, "x", p.model_copy(update={"max_bytes": cap}))
    assert len(capped.data) <= cap
    assert 30 <= capped.quality < 90 and capped.note is None
    # the highest step that fits: one step up does not
    above = render_one(noisy, "x", p.model_copy(update={"quality": capped.quality + 5}))
    assert len(above.data) > cap


def test_max_bytes_that_cannot_be_met_keeps_the_smallest_and_says_so(noisy):
    p = Preset(width=400, height=400, format="jpeg", quality=90, max_bytes=1000)
    r = render_one(noisy, "x", p)
    assert r.quality == 30
    assert r.note and "max_bytes 1000 not met" in r.note and str(len(r.data)) in r.note
    assert (
        r.data
        == render_one(noisy, "x", Preset(width=400, height=400, format="jpeg", quality=30)).data
    )
    png = render_one(noisy, "x", p.model_copy(update={"format": "png"}))
    assert png.quality is None and "not met" in (png.note or "")


# ---------------------------------------------------------------- metadata


def test_incoming_metadata_is_stripped():
    exif = Image.Exif()
    exif[0x010E] = MARKER  # ImageDescription
    exif[0x010F] = MARKER  # Make
    xmp = f'<x:xmpmeta xmlns:x="adobe:ns:meta/">{MARKER}</x:xmpmeta>'.encode()
    photo = content(120, 80)
    originals = [
        encode(
            photo,
            "JPEG",
            exif=exif.tobytes(),
            xmp=xmp,
            comment=MARKER,
            icc_profile=matrix_profile(P3),
        ),
        encode(photo, "PNG", exif=exif.tobytes(), pnginfo=_png_text(MARKER)),
        encode(photo, "WEBP", exif=exif.tobytes(), xmp=xmp),
    ]
    presets = {
        f"{fmt}-{meta}": Preset(long_edge=60, format=fmt, metadata=meta)
        for fmt in FORMATS
        for meta in ("provenance", "none")
    }
    for original in originals:
        assert MARKER.encode() in original
        for r in render_all(original, presets):
            assert MARKER.encode() not in r.data, r.name
            out = decode(r.data)
            assert not out.getexif(), r.name
            assert all(MARKER not in str(v) for v in out.info.values()), r.name


def _png_text(text: str):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", text)
    return info


@pytest.mark.parametrize("fmt", FORMATS)
def test_provenance_is_written_and_read_back(fmt):
    original = content(64, 48)
    r = render_one(original, "x", Preset(long_edge=32, format=fmt))
    assert read_provenance(r.data) == PROVENANCE_URI
    none = render_one(original, "x", Preset(long_edge=32, format=fmt, metadata="none"))
    assert read_provenance(none.data) is None
    info = decode(none.data).info
    assert not {"xmp", "XML:com.adobe.xmp", "icc_profile", "exif"} & set(info)


def test_read_provenance_elsewhere():
    assert read_provenance(encode(content(16, 16))) is None
    assert read_provenance(b"not an image at all") is None
    # the attribute form other tools write
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        '22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/'
        f'std/Iptc4xmpExt/2008-02-29/" Iptc4xmpExt:DigitalSourceType="{PROVENANCE_URI}"/>'
        "</rdf:RDF></x:xmpmeta>"
    ).encode()
    assert read_provenance(encode(content(16, 16), "JPEG", xmp=xmp)) == PROVENANCE_URI
    # found in the bytes even where Pillow cannot decode the container
    assert read_provenance(b"\0\0junk" + provenance_xmp() + b"junk") == PROVENANCE_URI


# ---------------------------------------------------------------- presets


def test_shipped_presets():
    presets = load_presets()
    ecommerce = {"pdp-zoom", "listing", "thumb", "og"}
    marketing = {
        "banner-leaderboard",
        "banner-rectangle",
        "banner-skyscraper",
        "banner-billboard",
        "hero",
        "social-square",
        "social-story",
    }
    assert ecommerce | marketing <= set(presets)
    assert (presets["og"].width, presets["og"].height, presets["og"].fit) == (1200, 630, "cover")
    assert presets["og"].max_bytes and presets["og"].format == "jpeg"
    assert presets["pdp-zoom"].fit == "pad" and presets["pdp-zoom"].format == "jpeg"
    assert all(presets[n].fit == "cover" for n in marketing)
    assert presets["banner-leaderboard"].width == 728 and presets["banner-leaderboard"].height == 90
    for p in presets.values():  # tasks.config round-trips presets through model_dump
        assert Preset.model_validate(p.model_dump()) == p


def test_shipped_presets_render(originals):
    presets = load_presets()
    image = originals["wide"].resize((384, 256))
    for name, p in presets.items():
        r = render_one(image, name, p.model_copy(update={"upscale": False}))
        assert isinstance(r, Rendered) and r.data and read_provenance(r.data) == PROVENANCE_URI


def test_a_name_in_two_files_is_an_error(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("presets:\n  same: {long_edge: 100}\n")
    (tmp_path / "b.yaml").write_text(
        "presets:\n  same: {long_edge: 200}\n  other: {long_edge: 5}\n"
    )
    with pytest.raises(ValueError, match=r"'same'.*a\.yaml.*b\.yaml"):
        load_presets(tmp_path)
    assert set(load_presets(tmp_path / "b.yaml")) == {"same", "other"}


@pytest.mark.parametrize(
    "spec",
    [
        {"width": 100},
        {"width": 100, "height": 100, "long_edge": 100},
        {},
        {"long_edge": 0},
        {"long_edge": 20000},
        {"long_edge": 100, "quality": 0},
        {"long_edge": 100, "quality": 101},
        {"long_edge": 100, "background": "not-a-colour"},
        {"long_edge": 100, "focal": [1.5, 0.5]},
        {"long_edge": 100, "format": "gif"},
        {"long_edge": 100, "colour": "red"},
    ],
)
def test_bad_presets_are_refused(tmp_path: Path, spec):
    with pytest.raises(ValueError):
        Preset.model_validate(spec)
    (tmp_path / "p.yaml").write_text(f"presets:\n  bad: {spec!r}\n".replace("'", '"'))
    with pytest.raises(ValueError, match=r"p\.yaml: preset 'bad'"):
        load_presets(tmp_path / "p.yaml")


def test_unsafe_names_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="preset name"):
        render_one(content(8, 8), "../escape", Preset(long_edge=4))
    (tmp_path / "p.yaml").write_text("presets:\n  .hidden: {long_edge: 4}\n")
    with pytest.raises(ValueError, match="preset name"):
        load_presets(tmp_path)


# ---------------------------------------------------------------- render_all


def test_render_all_decodes_the_original_once(monkeypatch):
    original = encode(content(300, 200))
    presets = {
        n: Preset(long_edge=e, format=f)
        for n, e, f in [("a", 100, "jpeg"), ("b", 50, "webp"), ("c", 80, "png")]
    }
    opened, prepared = [], []
    real_open, real_prepare = Image.open, render.prepare
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))
    monkeypatch.setattr(render, "prepare", lambda b: prepared.append(1) or real_prepare(b))
    out = render_all(original, presets)
    assert (len(opened), len(prepared)) == (1, 1)
    assert [r.name for r in out] == ["a", "b", "c"]
    assert [max(r.width, r.height) for r in out] == [100, 50, 80]


def test_outputs_are_reproducible_and_picklable():
    original = encode(content(120, 90))
    presets = {f: Preset(long_edge=60, format=f) for f in FORMATS}
    first, second = render_all(original, presets), render_all(original, presets)
    assert [r.data for r in first] == [r.data for r in second]
    assert pickle.loads(pickle.dumps(presets)) == presets
    assert pickle.loads(pickle.dumps(first)) == first
