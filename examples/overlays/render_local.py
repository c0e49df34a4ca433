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

from assetgen.tasks.renditions.presets import Preset
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


def main(out: Path) -> None:
    cfg = yaml.safe_load((HERE / "banner.yaml").read_text(encoding="utf-8"))
    spec = cfg["presets"]["banner-overlay"]
    for layer in spec["overlays"]:
        if layer["type"] == "image":
            layer["uri"] = str(HERE.parent.parent / layer["uri"])
    presets = {"banner-overlay": Preset.model_validate(spec)}
    original = stand_in()
    out.mkdir(parents=True, exist_ok=True)
    with open(HERE / "manifest.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            (r,) = render_all(original, presets, row, row["id"])
            if r.error:
                print(f"{row['id']}: {r.error}")
                continue
            path = out / f"{row['id']}.{r.extension}"
            path.write_bytes(r.data)
            print(path)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/overlays-check"))
