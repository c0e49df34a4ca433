"""Overlays: exact text in every script, logos, boxes, placement; errors that stop a rendition."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageFont, ImageStat

from assetgen.tasks.renditions import overlays
from assetgen.tasks.renditions.overlays import (
    OverlayError,
    SafeArea,
    TextLayer,
    apply_overlays,
    default_chain,
    fit_size,
    isolate_numbers,
    layer_rect,
    mirrored,
)
from assetgen.tasks.renditions.presets import Preset
from assetgen.tasks.renditions.render import render_all

DATA = Path(__file__).parent / "data" / "overlays"
NOTO = Path("/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf")
CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
HAVE_FONTS = NOTO.exists() and CJK.exists()
fonts = pytest.mark.skipif(
    not HAVE_FONTS and os.environ.get("ASSETGEN_REQUIRE_FONTS") != "1",
    reason="Noto fonts not installed (apt-get install fonts-noto-core fonts-noto-cjk)",
)
BG = (20, 40, 80)
SIZE = (600, 200)
SAMPLES = {
    "en-US": "Handmade mugs $24.99",
    "de-DE": "Größe für Straßenfeste 24,99 €",
    "ar": "أكواب مصنوعة يدويًا 89 ر.س",
    "he": "ספלים בעבודת יד 89 ₪",
    "ja": "ゆったりした朝のための手作りマグカップ",
    "zh-Hans": "为悠闲早晨打造的手工马克杯",
}
UPDATE = os.environ.get("ASSETGEN_UPDATE_OVERLAY_REFS") == "1"


def canvas(size: tuple[int, int] = SIZE) -> Image.Image:
    return Image.new("RGB", size, BG)


def text_layer(**kw) -> TextLayer:
    base = dict(content="text", min_size=10, max_size=60, max_lines=2, colour="#ffffff")
    return TextLayer(**{**base, **kw})


def ink_bbox(im: Image.Image, bg: tuple = BG) -> tuple[int, int, int, int] | None:
    diff = ImageChops.difference(im.convert("RGB"), Image.new("RGB", im.size, bg)).convert("L")
    return diff.point(lambda v: 255 if v > 24 else 0).getbbox()


def draw(text: str, locale: str, size=SIZE, safe: SafeArea | None = None, **kw) -> Image.Image:
    safe = safe or SafeArea()
    layer = text_layer(**kw)
    return apply_overlays(canvas(size), "p", [layer], safe, {"text": text, "locale": locale})


# ---------------------------------------------------------------- scripts


@fonts
@pytest.mark.parametrize("locale", list(SAMPLES))
def test_script_matches_its_reference(locale: str) -> None:
    im = draw(SAMPLES[locale], locale, anchor="center-start")
    ref_path = DATA / f"{locale}.png"
    if UPDATE or not ref_path.exists():
        if not UPDATE and os.environ.get("CI"):
            pytest.fail(f"reference {ref_path} missing")
        DATA.mkdir(parents=True, exist_ok=True)
        im.save(ref_path)
    ref = Image.open(ref_path).convert("RGB")
    assert ref.size == im.size
    mad = sum(ImageStat.Stat(ImageChops.difference(im, ref)).mean) / 3
    assert mad < 2.0, f"{locale}: mean absolute difference {mad:.2f} from {ref_path}"
    assert ink_bbox(im) is not None


@fonts
def test_arabic_is_joined() -> None:
    """Shaped Arabic is narrower than its letters set apart (isolated forms are wider)."""
    word = "مصنوعة"
    font = ImageFont.truetype(
        "/usr/share/fonts/truetype/noto/NotoSansArabic-Regular.ttf",
        40,
        layout_engine=ImageFont.Layout.RAQM,
    )
    joined = font.getlength(word, direction="rtl", language="ar")
    apart = sum(font.getlength(c, direction="rtl", language="ar") for c in word)
    assert joined < apart * 0.95


@fonts
@pytest.mark.parametrize("locale", ["ar", "he"])
def test_rtl_start_anchor_lands_at_the_right_edge(locale: str) -> None:
    safe = SafeArea(left=20, right=20, top=10, bottom=10)
    im = draw(SAMPLES[locale], locale, safe=safe, anchor="top-start", width=1.0, max_size=30)
    x0, _, x1, _ = ink_bbox(im)
    assert SIZE[0] - 20 - x1 <= 4  # flush with the safe area's right edge
    assert x0 > SIZE[0] // 3


@fonts
def test_ltr_start_anchor_lands_at_the_left_edge() -> None:
    safe = SafeArea(left=20, right=20, top=10, bottom=10)
    im = draw(SAMPLES["en-US"], "en-US", safe=safe, anchor="top-start", max_size=30)
    x0, _, x1, _ = ink_bbox(im)
    assert x0 - 20 <= 4 and x1 < SIZE[0] * 2 // 3


@fonts
@pytest.mark.parametrize("locale", list(SAMPLES))
def test_text_stays_inside_the_safe_area(locale: str) -> None:
    safe = SafeArea(left=0.1, right=0.1, top=0.15, bottom=0.15)
    for anchor in overlays.ANCHORS:
        im = draw(SAMPLES[locale], locale, safe=safe, anchor=anchor, width=0.5, height=0.5)
        x0, y0, x1, y1 = ink_bbox(im)
        assert x0 >= 60 and x1 <= 540 and y0 >= 30 and y1 <= 170, (locale, anchor)


def test_isolates_wrap_numbers_and_prices() -> None:
    assert isolate_numbers("מחיר 89 ₪") == "מחיר \u206689\u2069 ₪"
    assert isolate_numbers("السعر 1 299,50 ر.س") == "السعر \u20661 299,50\u2069 ر.س"
    assert isolate_numbers("$24.99 فقط") == "\u2066$24.99\u2069 فقط"
    assert isolate_numbers("٣٤ خصم") == "٣٤ خصم"


@fonts
def test_price_in_hebrew_keeps_its_digits_in_order() -> None:
    """89 drawn as "89", not "98": the ink of '8' is left of the ink of '9'."""
    big = dict(max_size=60, min_size=60, max_lines=1, anchor="center")
    whole = draw("מחיר 89", "he", **big)
    assert whole is not None
    shaper = overlays.Shaper(default_chain("he"), 60, "he")
    segs = shaper.segments(isolate_numbers("מחיר 89"))
    # visual order, left to right: the number first, then the Hebrew word
    assert [t for t, _, _ in segs] == ["89", "מחיר "] or [t.strip() for t, _, _ in segs] == [
        "89",
        "מחיר",
    ]


@fonts
@pytest.mark.parametrize("locale", ["ja", "zh-Hans"])
def test_cjk_breaks_between_characters(locale: str) -> None:
    layer = text_layer(max_lines=3, min_size=20, max_size=40)
    chain = default_chain(locale)
    _, lines = fit_size(layer, SAMPLES[locale], chain, locale, (200, 200))
    assert len(lines) >= 2 and "".join(lines) == SAMPLES[locale]


@fonts
def test_latin_brand_inside_arabic_gets_its_own_font_and_order() -> None:
    """Noto Sans Arabic has no Latin letters: the brand is an LTR piece in Noto Sans."""
    text = overlays.isolate_ltr("خصم Nike Air اليوم")
    shaper = overlays.Shaper(default_chain("ar"), 40, "ar")
    segs = shaper.segments(text)
    assert [t.strip() for t, _, _ in segs] == ["اليوم", "Nike Air", "خصم"]
    assert segs[1][1] == "ltr" and segs[1][2].endswith("NotoSans-Regular.ttf")
    assert ink_bbox(draw("خصم Nike Air اليوم", "ar")) is not None
    # broken inside the brand: each line's part of it is still an LTR piece in Noto Sans
    for t, d, spec in shaper.segments("\u2066Nike"):
        assert (t, d) == ("Nike", "ltr") and spec.endswith("NotoSans-Regular.ttf")
    assert [t.strip() for t, _, _ in shaper.segments("Air\u2069 اليوم")] == ["اليوم", "Air"]


def test_cjk_face_follows_the_locale() -> None:
    assert default_chain("ja")[0].endswith("NotoSansCJK-Regular.ttc#0")
    assert default_chain("zh-Hans")[0].endswith("#2")
    assert default_chain("zh-TW")[0].endswith("#3")


# ---------------------------------------------------------------- fit


@fonts
@pytest.mark.parametrize("locale", ["en-US", "ar", "ja"])
def test_auto_fit_picks_the_largest_size_that_fits(locale: str) -> None:
    layer = text_layer(min_size=8, max_size=200, max_lines=2)
    chain = default_chain(locale)
    box = (300, 120)
    size, _ = fit_size(layer, SAMPLES[locale], chain, locale, box)
    assert 8 < size < 200
    one_more = layer.model_copy(update={"min_size": size + 1, "max_size": size + 1})
    assert fit_size(one_more, SAMPLES[locale], chain, locale, box) is None


@fonts
def test_no_fit_at_min_size_is_an_error() -> None:
    with pytest.raises(OverlayError) as e:
        draw("A headline far too long for this tiny box " * 3, "en-US", min_size=30, width=0.3)
    msg = str(e.value)
    assert "preset 'p'" in msg and "layer #0 (text)" in msg and "does not fit" in msg
    assert "A headline far too long" in msg


@fonts
def test_missing_glyph_is_an_error_not_a_box() -> None:
    chain = {"default": [str(NOTO)]}
    with pytest.raises(OverlayError) as e:
        draw("Price 日本", "en-US", fonts=chain)
    assert "U+65E5" in str(e.value) and "Price 日本" in str(e.value)


@fonts
def test_font_chain_covers_what_the_first_font_lacks() -> None:
    # Noto Sans has no kana: the CJK font of the chain draws the whole text.
    im = draw("Mug マグ", "en-US")
    assert ink_bbox(im) is not None


def test_missing_raqm_is_an_error(monkeypatch) -> None:
    monkeypatch.setattr(overlays.fonts.features, "check", lambda name: False)
    with pytest.raises(OverlayError, match="raqm"):
        draw("hello", "en-US")


def test_missing_fribidi_is_an_error(monkeypatch) -> None:
    monkeypatch.setattr(overlays.fonts.features, "version", lambda name: None)
    with pytest.raises(OverlayError, match="FriBiDi"):
        draw("שלום", "he")


# ---------------------------------------------------------------- placement


def test_start_and_end_mirror_for_rtl() -> None:
    assert mirrored("top-start", True) == "top-end"
    assert mirrored("bottom-end", True) == "bottom-start"
    assert mirrored("center", True) == "center"
    assert mirrored("top-start", False) == "top-start"
    layer = text_layer(anchor="top-start", width=100, height=50, inset_x=10, inset_y=5)
    safe = (20, 10, 580, 190)
    assert layer_rect(layer, SIZE, safe, rtl=False) == (30, 15, 130, 65)
    assert layer_rect(layer, SIZE, safe, rtl=True) == (470, 15, 570, 65)


def test_box_layer_and_fractions() -> None:
    box = overlays.BoxLayer(anchor="bottom-end", width=0.25, height=0.5, fill="#ff0000")
    im = apply_overlays(canvas(), "p", [box], SafeArea(), {})
    assert ink_bbox(im) == (450, 100, 600, 200)
    assert im.getpixel((500, 150)) == (255, 0, 0)


def logo_png(tmp_path: Path) -> str:
    logo = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    logo.paste((255, 0, 0, 255), (50, 0, 100, 100))  # left half transparent
    path = tmp_path / "logo.png"
    logo.save(path)
    return str(path)


def test_logo_keeps_its_transparency(tmp_path: Path) -> None:
    layer = overlays.ImageLayer(uri=logo_png(tmp_path), anchor="top-start", width=100, height=100)
    im = apply_overlays(canvas(), "p", [layer], SafeArea(), {})
    assert im.getpixel((25, 50)) == BG  # under the transparent half: unchanged
    assert im.getpixel((75, 50)) == (255, 0, 0)


def test_conditional_layer(tmp_path: Path) -> None:
    box = overlays.BoxLayer(fill="#ff0000", if_column="price", width=50, height=50)
    assert ink_bbox(apply_overlays(canvas(), "p", [box], SafeArea(), {"price": ""})) is None
    assert ink_bbox(apply_overlays(canvas(), "p", [box], SafeArea(), {})) is None
    assert ink_bbox(apply_overlays(canvas(), "p", [box], SafeArea(), {"price": "9"})) is not None


def test_template_over_columns_and_unknown_column() -> None:
    layer = text_layer(content="{{ price }} €")
    assert overlays.resolve_text(layer, {"price": "24,99"}) == "24,99 €"
    with pytest.raises(OverlayError, match="nope"):
        apply_overlays(canvas(), "p", [text_layer(content="nope")], SafeArea(), {})


# ---------------------------------------------------------------- in a rendition


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


@fonts
def test_a_failing_overlay_fails_only_its_rendition() -> None:
    good = Preset(width=300, height=100, fit="cover", format="png")
    bad = Preset(
        width=300,
        height=100,
        fit="cover",
        format="png",
        overlays=[{"type": "text", "content": "headline", "min_size": 80}],
    )
    text = Preset(
        width=300,
        height=100,
        fit="cover",
        format="png",
        safe_area={"left": 0.05, "right": 0.05},
        overlays=[{"type": "text", "content": "headline", "max_size": 30}],
    )
    out = render_all(
        png(canvas()),
        {"good": good, "bad": bad, "text": text},
        {"headline": "A long headline that cannot fit at eighty", "locale": "en-US"},
        row="row-1",
    )
    by = {r.name: r for r in out}
    assert by["good"].error is None and by["good"].data
    assert by["bad"].data == b"" and "row row-1, preset 'bad'" in by["bad"].error
    assert by["text"].error is None
    assert ink_bbox(Image.open(io.BytesIO(by["text"].data))) is not None


def test_presets_round_trip_with_overlays() -> None:
    p = Preset(
        width=100,
        height=50,
        overlays=[
            {"type": "text", "content": "x"},
            {"type": "image", "uri": "logo.png"},
            {"type": "box", "radius": 0.5},
        ],
    )
    assert Preset.model_validate(p.model_dump()) == p
    with pytest.raises(ValueError):
        Preset(width=10, height=10, overlays=[{"type": "text", "content": "x", "anchor": "left"}])


@fonts
def test_refresh_records_the_failed_rendition_and_keeps_the_others(tmp_path: Path) -> None:
    from assetgen.tasks.renditions.postprocess import refresh_assets
    from assetgen.tasks.store.assets import SIDECAR, AssetStore, Sidecar, asset_folder
    from tests.test_catalog import sidecar

    store = AssetStore(str(tmp_path / "store"))
    image = png(canvas((300, 100)))
    sc = sidecar(
        "a1",
        row_id="row-7",
        metadata={"headline": "Sale " * 30, "locale": "de-DE"},
        bytes=len(image),
    )
    folder = asset_folder(sc.partition, "a1")
    store.write_asset(folder, sc.original, image, sc)
    overlay = [{"type": "text", "content": "headline", "min_size": 40, "name": "headline"}]
    presets = {
        "plain": Preset(width=150, height=50, fit="cover", format="png"),
        "banner": Preset(width=150, height=50, fit="cover", format="png", overlays=overlay),
    }
    _, errors = refresh_assets(store, presets, [folder], "run-2", workers=1)
    assert len(errors) == 1
    assert "rendition banner failed" in errors[0] and "row row-7, preset 'banner'" in errors[0]
    assert "layer headline" in errors[0] and "does not fit" in errors[0]
    stored = Sidecar.model_validate_json(store.read_bytes(f"{folder}/{SIDECAR}"))
    assert [r.name for r in stored.renditions] == ["plain"]
    assert store.read_bytes(f"{folder}/{sc.original}") == image


# ---------------------------------------------------------------- what was drawn


@fonts
def test_drawn_records_each_layer_actually_drawn(tmp_path: Path) -> None:
    import hashlib
    import json

    logo = logo_png(tmp_path)
    layers = [
        overlays.BoxLayer(name="badge", fill="#ff0000", width=50, height=50),
        overlays.BoxLayer(name="sale", fill="#00ff00", if_column="sale", width=50, height=50),
        text_layer(name="headline", content="{{ text }}", anchor="center-start", max_size=30),
        overlays.ImageLayer(name="logo", uri=logo, anchor="bottom-end", width=40, height=40),
    ]
    drawn: list[dict] = []
    values = {"text": "מחיר 89 ₪", "locale": "he", "sale": ""}
    apply_overlays(canvas(), "p", layers, SafeArea(), values, drawn=drawn)
    assert [d["layer"] for d in drawn] == ["badge", "headline", "logo"]  # "sale" skipped
    box, text, image = drawn
    assert box == {
        "layer": "badge",
        "type": "box",
        "anchor": "top-start",
        "rtl": True,
        "rect": [550, 0, 600, 50],  # top-start mirrored for Hebrew
        "fill": "#ff0000",
    }
    assert text["type"] == "text" and text["text"] == "מחיר 89 ₪"
    assert text["lines"] == ["מחיר 89 ₪"] and 10 <= text["size"] <= 30
    assert "\u2066" not in json.dumps(text, ensure_ascii=False)
    assert "NotoSansHebrew-Regular.ttf" in text["fonts"]
    assert image["uri"] == logo and image["placed_size"] == [40, 40]
    assert image["sha256"] == hashlib.sha256(Path(logo).read_bytes()).hexdigest()
    assert image["rect"] == [0, 160, 40, 200] and image["placed_rect"] == [0, 160, 40, 200]
    json.dumps(drawn)  # JSON-able as it is
    # without `drawn`, the same pixels
    again = apply_overlays(canvas(), "p", layers, SafeArea(), values)
    with_records = apply_overlays(canvas(), "p", layers, SafeArea(), values, drawn=[])
    assert again.tobytes() == with_records.tobytes()


# ---------------------------------------------------------------- shadow


def _mask(im: Image.Image, test) -> Image.Image:
    """White where `test(pixel)` holds: the ink of one colour."""
    rgb = im.convert("RGB").tobytes()
    px = zip(rgb[0::3], rgb[1::3], rgb[2::3], strict=True)
    return Image.frombytes("L", im.size, bytes(255 if test(p) else 0 for p in px))


@fonts
def test_text_shadow_is_offset_and_blurred_under_the_text() -> None:
    kw = dict(min_size=40, max_size=40, max_lines=1, anchor="center")
    white = lambda p: min(p) > 200  # noqa: E731
    red = lambda p: p[0] > 120 and p[1] < 90 and p[2] < 120  # noqa: E731
    plain = draw("Sale", "en-US", **kw)
    assert _mask(plain, red).getbbox() is None
    sharp = draw("Sale", "en-US", shadow="#ff0000", shadow_offset=(0.1, 0.1), shadow_blur=0, **kw)
    *_, tx1, ty1 = _mask(sharp, white).getbbox()
    *_, sx1, sy1 = _mask(sharp, red).getbbox()
    # 0.1 of size 40: 4 px down and right (give or take the antialiased edge)
    assert 3 <= sx1 - tx1 <= 5 and 3 <= sy1 - ty1 <= 5
    assert _mask(sharp, white).getbbox() == _mask(plain, white).getbbox()  # text unmoved
    soft = draw("Sale", "en-US", shadow="#ff0000", shadow_offset=(0.1, 0.1), shadow_blur=0.1, **kw)
    touched = lambda im: _mask(im, lambda p: p != BG).histogram()[255]  # noqa: E731
    assert touched(soft) > touched(sharp)  # the blur spreads the shadow
    full = lambda im: _mask(im, lambda p: p[0] > 240 and p[1] < 40).histogram()[255]  # noqa: E731
    assert full(soft) < full(sharp)  # and softens it: fewer pixels of the full colour


def test_shadow_is_validated() -> None:
    with pytest.raises(ValueError, match="not a colour"):
        text_layer(shadow="nope")
    with pytest.raises(ValueError):
        text_layer(shadow="#000", shadow_offset=(2, 0))


def test_a_shadow_past_the_edge_is_cut_not_an_error() -> None:
    tile = Image.new("RGBA", (50, 50), (255, 0, 0, 255))
    im = canvas((40, 40))
    overlays.draw.composite(im, tile, (-10, -20))
    assert im.getpixel((0, 0)) == (255, 0, 0) and im.getpixel((39, 29)) == (255, 0, 0)
    assert im.getpixel((39, 30)) == BG
    overlays.draw.composite(im, tile, (100, 100))  # wholly outside: nothing
