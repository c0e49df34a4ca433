"""Plan-time overlay checks: what would fail a rendition's overlays, found before anything is spent.

For every valid manifest row and every rendition preset with overlays, each
layer is checked as rendering would check it: the text resolved from the
row's columns (an unknown column or a broken template), raqm and FriBiDi
present, every font of the locale's chain readable, every character covered
by a font of the chain (no boxes), and, where the rendition's size is known
from the row's `size`, the text fitted into its box at `min_size` at least;
an image layer's logo readable. The same code as drawing (overlays.layout),
so plan reports the error the rendition would fail with.

A problem does not reject the row: the picture is fine, and the text can be
fixed later with `assetgen refresh --manifest` without paying for a new
image. It is reported, naming the row, the preset, the layer and the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import jinja2
from pydantic import BaseModel

from assetgen.tasks.config.job import JobConfig
from assetgen.tasks.config.models import load_model_table
from assetgen.tasks.manifest.read import Reject, read_manifest
from assetgen.tasks.manifest.rows import ManifestRow, RowContext, validate_row
from assetgen.tasks.plan.jobs import STYLE_VERSION_KEY, Job
from assetgen.tasks.renditions.overlays import (
    ImageLayer,
    OverlayError,
    TextLayer,
    blank,
    chain_for,
    check_glyphs,
    check_shaping,
    coverage,
    is_rtl,
    isolate_ltr,
    layer_rect,
    layout_text,
    resolve_text,
    safe_rect,
)
from assetgen.tasks.renditions.overlays.draw import logo_image
from assetgen.tasks.renditions.presets import Preset

# The rendition geometry is render.py's; imported, not copied, so plan and
# rendering cannot disagree on the box the text must fit.
from assetgen.tasks.renditions.render import _plan as rendition_geometry

Kind = Literal["column", "template", "shaping", "fonts", "glyphs", "fit", "image"]
_SIZE = re.compile(r"^(\d+)x(\d+)$")
# In plan/run output: the first problems in full, then a count (`plan --json` lists
# up to this many too; every one is in the rendition errors when the run draws them).
SHOWN = 20
LISTED = 1000


class OverlayProblem(BaseModel):
    """One overlay that would fail its rendition; JSON-able for `plan --json`."""

    row: int | None  # the manifest's record number; None for a check not tied to one row
    id: str | None
    preset: str
    layer: str
    text: str | None
    kind: Kind
    message: str  # names row, preset, layer and text, as the rendition error would


@dataclass
class OverlayCheck:
    """Checks rows against the rendition presets; collects the problems it finds."""

    presets: dict[str, Preset]
    problems: list[OverlayProblem] = field(default_factory=list)
    total: int = 0
    # A check whose answer does not depend on the row (raqm, a font file, a logo),
    # or the same text in the same box again: answered once.
    _once: set[tuple[Any, ...]] = field(default_factory=set)
    _seen: dict[tuple[Any, ...], tuple[Kind, str] | None] = field(default_factory=dict)

    @classmethod
    def for_config(cls, cfg: JobConfig) -> OverlayCheck:
        """The presets the job renders (its `renditions`) that have overlays."""
        rendered = {n: cfg.presets[n] for n in cfg.renditions if cfg.presets[n].overlays}
        return cls(rendered)

    def add(self, item: Job | Reject) -> None:
        """A planned job (its row, once for all its variants); rejects are not checked."""
        if isinstance(item, Job) and item.variant == 0:
            self.check_row(item.row, item.row_id, {**item.partition, **item.metadata}, item.size)

    def check_row(
        self, row: int, row_id: str, values: dict[str, Any], size: str | None = None
    ) -> None:
        """Every overlay of every preset for one row; `values` as rendering gets them."""
        original = _original_size(size)
        for name, preset in self.presets.items():
            locale = str(values.get(preset.locale_column) or "en-US").strip() or "en-US"
            box = _rendition_box(preset, original)
            for i, layer in enumerate(preset.overlays):
                if layer.if_column is not None and blank(values.get(layer.if_column)):
                    continue
                label = layer.label(i)
                where = f"row {row_id}, preset {name!r}, layer {label}"
                if isinstance(layer, TextLayer):
                    self._text(row, row_id, name, preset, layer, label, where, values, locale, box)
                elif isinstance(layer, ImageLayer):
                    self._image(row, row_id, name, layer, label, where)

    def _report(
        self,
        row: int | None,
        row_id: str | None,
        preset: str,
        layer: str,
        text: str | None,
        kind: Kind,
        message: str,
    ) -> None:
        self.total += 1
        if len(self.problems) < LISTED:
            self.problems.append(
                OverlayProblem(
                    row=row,
                    id=row_id,
                    preset=preset,
                    layer=layer,
                    text=text,
                    kind=kind,
                    message=message,
                )
            )

    def _text(
        self,
        row: int,
        row_id: str,
        name: str,
        preset: Preset,
        layer: TextLayer,
        label: str,
        where: str,
        values: dict[str, Any],
        locale: str,
        box: tuple[int, int] | None,
    ) -> None:
        try:
            text = resolve_text(layer, values)
        except KeyError as e:
            known = ", ".join(sorted(values)) or "none"
            message = f"{where}: {e.args[0]} (columns: {known})"
            return self._report(row, row_id, name, label, layer.content, "column", message)
        except jinja2.TemplateError as e:
            message = f"{where}: template {layer.content!r}: {e}"
            return self._report(row, row_id, name, label, layer.content, "template", message)
        if not text.strip():
            return None
        # Needed whatever the text: reported once per layer, at the first row that draws it.
        if ("shaping", name, label) not in self._once:
            self._once.add(("shaping", name, label))
            try:
                check_shaping()
            except OverlayError as e:
                self._report(row, row_id, name, label, text, "shaping", f"{where}: {e}")
        chain = chain_for(layer, locale)
        unreadable = False
        for spec in chain:
            try:
                coverage(spec)
            except OverlayError as e:
                unreadable = True
                if ("font", name, label, spec) not in self._once:
                    self._once.add(("font", name, label, spec))
                    self._report(row, row_id, name, label, text, "fonts", f"{where}: {e}")
        if unreadable:
            return None  # every glyph check of this chain would say the same
        shaped = isolate_ltr(text) if is_rtl(locale) else text
        key = (name, label, shaped, locale, box)
        if key not in self._seen:
            self._seen[key] = _glyphs_and_fit(preset, layer, shaped, locale, box, "\0")
        if (found := self._seen[key]) is not None:
            kind, message = found
            self._report(row, row_id, name, label, text, kind, message.replace("\0", where))
        return None

    def _image(
        self, row: int, row_id: str, name: str, layer: ImageLayer, label: str, where: str
    ) -> None:
        if ("image", name, label) in self._once:
            return
        self._once.add(("image", name, label))
        try:
            logo_image(layer.uri)
        except OverlayError as e:
            self._report(row, row_id, name, label, None, "image", f"{where}: {e}")

    def lines(self) -> list[str]:
        """The problems for a person: the first SHOWN in full, then how many more."""
        out = [p.message for p in self.problems[:SHOWN]]
        if self.total > SHOWN:
            out.append(f"... and {self.total - SHOWN:,} more (assetgen plan --json lists them)")
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "count": self.total,
            "listed": [p.model_dump() for p in self.problems],
        }


def _glyphs_and_fit(
    preset: Preset,
    layer: TextLayer,
    text: str,
    locale: str,
    box: tuple[int, int] | None,
    where: str,
) -> tuple[Kind, str] | None:
    """The first problem of one text in one layer: a missing glyph, or it does not fit."""
    try:
        check_glyphs(text, chain_for(layer, locale), locale, where)
    except OverlayError as e:
        return "glyphs", _plain(str(e))
    if box is None:
        return None  # the rendition's size is known only once the image is made
    rtl = is_rtl(locale)
    rect = layer_rect(layer, box, safe_rect(box, preset.safe_area), rtl)
    try:
        layout_text(layer, text, rect, locale, where)
    except OverlayError as e:
        return "fit", _plain(str(e))
    return None


def _plain(message: str) -> str:
    # The text in the message without the isolates added for RTL shaping.
    return message.replace("\u2066", "").replace("\u2069", "")


def _original_size(size: str | None) -> tuple[int, int] | None:
    m = _SIZE.match(size or "")
    return (int(m[1]), int(m[2])) if m else None


def _rendition_box(preset: Preset, original: tuple[int, int] | None) -> tuple[int, int] | None:
    """The size overlays are drawn on (the pad canvas, else the resized image)."""
    if original is None:
        return None
    geometry = rendition_geometry(*original, preset)
    return geometry.canvas or geometry.size


def check_manifest(cfg: JobConfig, url: str, fmt: str | None = None) -> OverlayCheck:
    """Every valid row of a manifest, without the planner's reference reads (for `run`,
    whose own plan runs inside the flow): rows validated as planning would."""
    check = OverlayCheck.for_config(cfg)
    if not check.presets:
        return check  # nothing to check: the manifest is not read twice
    ctx = RowContext.build(cfg, load_model_table())
    for batch in read_manifest(url, fmt):
        rows: Iterable[ManifestRow] = (
            r
            for item in batch
            if not isinstance(item, Reject)
            and isinstance(r := validate_row(item, ctx), ManifestRow)
        )
        for row in rows:
            metadata = row.metadata
            if cfg.style_version is not None:
                metadata = {**metadata, STYLE_VERSION_KEY: cfg.style_version}
            check.check_row(row.row, row.id, {**row.partition, **metadata}, row.size)
    return check
