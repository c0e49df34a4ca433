"""Render the example's six banners over a stand-in picture, with no API call.

.venv/bin/python examples/overlays/render_local.py [OUT_DIR]   (default /tmp/overlays-check)
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import yaml
from PIL import Image, ImageDraw

from assetgen.tasks.renditions.presets import Preset, relative_to_config
from assetgen.tasks.renditions.render import render_all

HERE = Path(__file__).parent


def stand_in(w: int = 1536, h: int = 1024) -> bytes:
    """Something like a photo: warm gradient, a few shapes."""
    im = Image.linear_gradient("L").rotate(90).resize((w, h))
    im = Image.merge("RGB", [im.point(lambda v: 120 + v // 2), im.point(lambda v: 90 + v // 3), im])
    d = ImageDraw.Draw(im)
    for i in range(5):
        x = 200 + i * 260
        d.rounded_rectangle(
            (x, 520, x + 180, 800), radius=30, fill=(200 - i * 25, 120, 80 + i * 30)
        )
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def render_banners() -> list[tuple[str, str, bytes]]:
    """(row id, file extension, banner bytes) for each manifest row, in order; a row whose
    overlays fail is printed with its error and left out."""
    cfg = yaml.safe_load((HERE / "banner.yaml").read_text(encoding="utf-8"))
    # The logo's uri is relative to banner.yaml's folder, as `assetgen run --config` reads it.
    spec = relative_to_config(cfg["presets"]["banner-overlay"], HERE / "banner.yaml")
    presets = {"banner-overlay": Preset.model_validate(spec)}
    original = stand_in()
    out = []
    with open(HERE / "manifest.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            (r,) = render_all(original, presets, row, row["id"])
            if r.error:
                print(f"{row['id']}: {r.error}")
                continue
            out.append((row["id"], r.extension, r.data))
    return out


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for row_id, extension, data in render_banners():
        path = out / f"{row_id}.{extension}"
        path.write_bytes(data)
        print(path)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/overlays-check"))
