"""The machine-readable "made by AI" mark: IPTC digital source type in an XMP packet."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

from PIL import Image

PROVENANCE_URI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"

IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"

RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"


def provenance_xmp() -> bytes:
    """The XMP packet marking an image as made by a trained algorithm (generative AI)."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f' <rdf:RDF xmlns:rdf="{RDF_NS}">\n'
        f'  <rdf:Description rdf:about="" xmlns:Iptc4xmpExt="{IPTC_EXT_NS}">\n'
        f"   <Iptc4xmpExt:DigitalSourceType>{PROVENANCE_URI}</Iptc4xmpExt:DigitalSourceType>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="r"?>'
    ).encode()


_XMP_RE = re.compile(rb"<x:xmpmeta[\s>].*?</x:xmpmeta>", re.DOTALL)


_DST_RE = re.compile(
    r"DigitalSourceType(?:\s*=\s*[\"']([^\"']+)[\"']|\s*>\s*([^<\s]+)\s*<"
    r"|[^>]*rdf:resource\s*=\s*[\"']([^\"']+)[\"'])"
)


def _source_type(packet: bytes | str) -> str | None:
    text = packet.decode("utf-8", "replace") if isinstance(packet, bytes) else packet
    if "<!ENTITY" not in text and "<!DOCTYPE" not in text:
        try:
            root = ET.fromstring(text.strip().lstrip("\ufeff"))
        except ET.ParseError:
            root = None
        if root is not None:
            tag = f"{{{IPTC_EXT_NS}}}DigitalSourceType"
            for el in root.iter():
                if tag in el.attrib:
                    return el.attrib[tag].strip()
                if el.tag == tag:
                    value = el.get(f"{{{RDF_NS}}}resource") or (el.text or "").strip()
                    if value:
                        return value
            return None
    m = _DST_RE.search(text)
    return next((g for g in m.groups() if g), None) if m else None


def read_provenance(data: bytes) -> str | None:
    """The IPTC digital source type in the file's XMP, or None."""
    packets: list[bytes | str] = []
    try:
        with Image.open(io.BytesIO(data)) as im:
            for key in ("xmp", "XML:com.adobe.xmp"):
                if im.info.get(key):
                    packets.append(im.info[key])
    except Exception:  # not an image Pillow can open here (e.g. AVIF without libavif)
        pass
    if not packets:
        packets = [m.group() for m in _XMP_RE.finditer(data)]
    for packet in packets:
        value = _source_type(packet)
        if value:
            return value
    return None
