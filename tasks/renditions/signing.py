"""Renditions that keep their provenance: rendered, then signed as C2PA edits of the original.

Signing runs in the rendition pool's worker processes, right after each
rendition is encoded (its XMP mark included, so the mark is inside what is
signed). Without signing material renditions carry the XMP mark alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from typing import Any

from cryptography import x509
from PIL import Image

from assetgen.tasks.config.job import ConfigError, JobConfig
from assetgen.tasks.renditions.credentials import (
    Placed,
    SigningError,
    SigningMaterial,
    Written,
    load_signing_material,
    mime_of,
    sign_rendition,
)
from assetgen.tasks.renditions.overlays.draw import logo_file
from assetgen.tasks.renditions.presets import Preset
from assetgen.tasks.renditions.render import Rendered, render_all

UNSIGNED_NOTE = (
    "renditions carry the XMP AI-generated mark only, no verifiable credentials "
    "(set provenance.c2pa to sign them; README: Provenance)"
)
# A rendition's aspect ratio this far from the original's was cropped to fit.
CROP_TOLERANCE = 0.01


def signing_material(cfg: JobConfig) -> SigningMaterial | None:
    """The config's signing material, checked before anything is spent; None when there is none.

    Bad material is a ConfigError (exit code 2) naming the file and the reason, never the key.
    """
    c2pa = cfg.provenance.c2pa
    if c2pa is None:
        return None
    try:
        return load_signing_material(
            c2pa.cert_chain, c2pa.private_key, c2pa.alg, c2pa.timestamp_url
        )
    except SigningError as e:
        raise ConfigError(f"provenance.c2pa: {e}") from None


def credentials_note(material: SigningMaterial | None) -> str:
    """One line for summaries and the plan: what provenance the renditions will carry."""
    if material is None:
        return UNSIGNED_NOTE
    return f"renditions carry C2PA credentials signed by {signer_name(material)}"


def signer_name(material: SigningMaterial) -> str:
    """The common name (else the whole subject) of the signing certificate."""
    leaf = x509.load_pem_x509_certificate(material.cert_chain.encode())
    names = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else leaf.subject.rfc4514_string()


def edit_actions(
    original: tuple[int, int], original_format: str, rendered: Rendered, preset: Preset
) -> list[str]:
    """The C2PA actions that made `rendered` from the original."""
    actions = []
    width, height = original
    aspect = width / height
    reshaped = abs(rendered.width / rendered.height - aspect) > CROP_TOLERANCE * aspect
    if preset.fit == "cover" and preset.long_edge is None and reshaped:
        actions.append("c2pa.cropped")
    if (rendered.width, rendered.height) != (width, height):
        actions.append("c2pa.resized")
    if mime_of(rendered.format) != mime_of(original_format):
        actions.append("c2pa.converted")
    return actions


def placed_logos(rendered: Rendered) -> list[Placed]:
    """The logos drawn on `rendered` (its overlay records), with the bytes that were drawn."""
    out = []
    for record in rendered.overlays:
        if record["type"] != "image":
            continue
        data, mime = logo_file(record["uri"])  # cached when drawn: the same bytes
        if hashlib.sha256(data).hexdigest() != record["sha256"]:
            raise SigningError(f"logo {record['uri']} changed between drawing and signing")
        name = record["uri"].rstrip("/").rsplit("/", 1)[-1] or "logo"
        out.append(Placed(record["layer"], name, mime, data))
    return out


def render_and_sign(
    original: bytes,
    presets: dict[str, Preset],
    material: SigningMaterial | None = None,
    values: dict[str, Any] | None = None,
    row: str | None = None,
) -> list[Rendered]:
    """Every preset of `original` (render_all), each signed with `material` when there is one.

    `values`: the asset's manifest columns, for overlays. A rendition that
    failed (`error`) is passed on unsigned.
    """
    rendered = render_all(original, presets, values, row)
    if material is None:
        return rendered
    with Image.open(io.BytesIO(original)) as image:
        size, fmt = image.size, (image.format or "png").lower()
    signed = []
    for r in rendered:
        if r.error is not None:
            signed.append(r)
            continue
        data = sign_rendition(
            material,
            original,
            mime_of(fmt),
            r.data,
            mime_of(r.format),
            edit_actions(size, fmt, r, presets[r.name]),
            title=f"{r.name}.{r.extension}",
            placed=placed_logos(r),
            written=[Written(d["layer"], d["text"]) for d in r.overlays if d["type"] == "text"],
        )
        signed.append(dataclasses.replace(r, data=data, credentials="signed"))
    return signed
