"""C2PA Content Credentials: renditions signed as edits of their original, read back offline.

Certificates are made per session by tasks/renditions/made_up_pki.py (a test root, a
"generator" leaf standing for OpenAI, an "assetgen" leaf). Nothing here uses
the network: remote manifest fetch and OCSP are off in every c2pa context
(one test checks that no fetch is attempted).
"""

from __future__ import annotations

import io
import json
import pickle
import socket
import threading
from pathlib import Path

import c2pa
import pytest
from cryptography import x509
from PIL import Image, features

from assetgen.tasks.renditions.credentials import (
    DIGITAL_SOURCE_TYPE,
    Credentials,
    SigningError,
    SigningMaterial,
    load_signing_material,
    mime_of,
    read_credentials,
    sign_original,
    sign_rendition,
)
from assetgen.tasks.renditions.made_up_pki import DOCUMENT_SIGNING, GENERATOR_NAME, Leaf, TestPKI
from assetgen.tasks.renditions.presets import Preset, load_presets
from assetgen.tasks.renditions.provenance import read_provenance
from assetgen.tasks.renditions.render import render_all

ROOT = Path(__file__).resolve().parent.parent
FORMATS = [
    "jpeg",
    "png",
    "webp",
    pytest.param(
        "avif",
        marks=pytest.mark.skipif(not features.check("avif"), reason="Pillow without AVIF"),
    ),
]
ACTIONS = ["c2pa.resized", "c2pa.converted"]
GENERATOR = GENERATOR_NAME


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def pki() -> TestPKI:
    return TestPKI()


@pytest.fixture(scope="session")
def leaves(pki: TestPKI) -> dict[str, Leaf]:
    return {
        "generator": pki.generator(),
        "assetgen": pki.assetgen(),
        "assetgen-ps256": pki.assetgen("ps256"),
        "assetgen-ed25519": pki.assetgen("ed25519"),
        "doc-signing-only": pki.leaf("assetgen", "es256", ekus=(DOCUMENT_SIGNING,)),
        "expired": pki.expired(),
        "not-yet-valid": pki.not_yet_valid(),
        "mismatched": pki.mismatched_key(),
    }


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory, leaves: dict[str, Leaf]) -> dict:
    folder = tmp_path_factory.mktemp("c2pa-certs")
    return {name: leaf.write(folder, name) for name, leaf in leaves.items()}


def _load(files: dict, name: str, alg: str = "es256") -> SigningMaterial:
    chain, key = files[name]
    return load_signing_material(str(chain), str(key), alg)


@pytest.fixture(scope="session")
def generator(files: dict) -> SigningMaterial:
    return _load(files, "generator")


@pytest.fixture(scope="session")
def assetgen(files: dict) -> SigningMaterial:
    return _load(files, "assetgen")


def _image(fmt: str = "png", size: tuple[int, int] = (512, 384)) -> bytes:
    """Noise with shapes, like a generated image; png as the API returns it."""
    im = Image.effect_noise(size, 40).convert("RGB")
    im.paste((200, 40, 40), (40, 40, size[0] // 2, size[1] // 2))
    buf = io.BytesIO()
    im.save(buf, fmt.upper())
    return buf.getvalue()


@pytest.fixture(scope="session")
def original(generator: SigningMaterial) -> bytes:
    """An original the way OpenAI's arrive: a PNG with a generator's C2PA manifest."""
    return sign_original(generator, _image(), "image/png", generator=GENERATOR)


def _thumb(fmt: str) -> Preset:
    return load_presets(ROOT / "configs" / "presets" / "ecommerce.yaml")["thumb"].model_copy(
        update={"format": fmt}
    )


def _rendition(original: bytes, fmt: str) -> bytes:
    """A thumb rendition with Pillow, carrying the IPTC XMP mark (none of the C2PA)."""
    (rendered,) = render_all(original, {f"thumb-{fmt}": _thumb(fmt)})
    assert read_provenance(rendered.data) == DIGITAL_SOURCE_TYPE
    assert not read_credentials(rendered.data, mime_of(fmt)).present  # Pillow dropped it
    return rendered.data


def _reader_json(data: bytes, mime: str, anchors: str | None) -> tuple[str | None, dict]:
    """c2pa's own Reader, used directly: validation state and manifest store."""
    trust = {"trust_anchors": anchors} if anchors else {}
    settings = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}, "trust": trust}
    with (
        c2pa.Context.from_dict(settings) as ctx,
        c2pa.Reader(mime, io.BytesIO(data), context=ctx) as reader,
    ):
        return reader.get_validation_state(), json.loads(reader.json())


def _keys(obj: object) -> set[str]:
    if isinstance(obj, dict):
        return set(obj) | {k for v in obj.values() for k in _keys(v)}
    if isinstance(obj, list):
        return {k for v in obj for k in _keys(v)}
    return set()


def _flip_in_image_data(unsigned: bytes, signed: bytes) -> bytes:
    """Change one byte of the compressed image data (found from the unsigned file's middle)."""
    window = unsigned[len(unsigned) // 2 : len(unsigned) // 2 + 48]
    at = signed.find(window)
    assert at > 0 and signed.count(window) == 1
    out = bytearray(signed)
    out[at + 20] ^= 0x5A
    return bytes(out)


# ---------------------------------------------------------------- the chain, per format


def test_original_reads_as_generated(original: bytes, pki: TestPKI) -> None:
    cred = read_credentials(original, "image/png", trust_anchors=pki.root)
    assert cred.validation_state == "Trusted" and cred.trusted
    assert cred.claim_generator == GENERATOR
    assert cred.actions == ["c2pa.created"]
    assert cred.digital_source_type == DIGITAL_SOURCE_TYPE
    assert cred.parent is None and cred.errors == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_rendition_chain_reaches_the_generator(
    fmt: str, original: bytes, assetgen: SigningMaterial, pki: TestPKI
) -> None:
    mime = mime_of(fmt)
    rendition = _rendition(original, fmt)
    signed = sign_rendition(assetgen, original, "image/png", rendition, mime, ACTIONS, "thumb")

    cred = read_credentials(signed, mime, trust_anchors=pki.root)
    assert cred.present and cred.validation_state == "Trusted" and cred.trusted, cred.errors
    assert cred.claim_generator == "assetgen"
    assert cred.signer is not None and cred.signer.startswith("assetgen")
    assert cred.actions == ["c2pa.opened", *ACTIONS]  # the SDK adds "opened" for the parent
    assert cred.digital_source_type == DIGITAL_SOURCE_TYPE
    assert cred.errors == []
    parent = cred.parent
    assert parent is not None and parent.validation_state == "Trusted" and parent.trusted
    assert parent.claim_generator == GENERATOR and parent.signer.startswith(GENERATOR)
    assert parent.actions == ["c2pa.created"]
    assert parent.digital_source_type == DIGITAL_SOURCE_TYPE
    assert parent.parent is None

    # c2pa's own Reader agrees, and shows the parent's manifest embedded in the store.
    state, store = _reader_json(signed, mime, pki.root)
    assert state == "Trusted", store.get("validation_status")
    active = store["manifests"][store["active_manifest"]]
    (ingredient,) = active["ingredients"]
    assert ingredient["relationship"] == "parentOf"
    embedded = store["manifests"][ingredient["active_manifest"]]
    assert embedded["claim_generator_info"][0]["name"] == GENERATOR
    assert "thumbnail" not in _keys(store)  # neither claim nor ingredient thumbnail
    assert "c2pa.thumbnail" not in json.dumps(store)

    # The XMP mark was inside what was signed, and is still there.
    assert read_provenance(signed) == DIGITAL_SOURCE_TYPE
    with Image.open(io.BytesIO(signed)) as im:
        assert im.size == (256, 256)

    # Without trust anchors the signatures still check out, but nobody is trusted.
    plain = read_credentials(signed, mime)
    assert plain.validation_state == "Valid" and not plain.trusted and plain.errors == []
    assert plain.parent is not None and not plain.parent.trusted
    assert _reader_json(signed, mime, None)[0] == "Valid"


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_changed_byte_in_the_image_makes_it_invalid(
    fmt: str, original: bytes, assetgen: SigningMaterial, pki: TestPKI
) -> None:
    mime = mime_of(fmt)
    rendition = _rendition(original, fmt)
    signed = sign_rendition(assetgen, original, "image/png", rendition, mime, ACTIONS)
    tampered = _flip_in_image_data(rendition, signed)
    cred = read_credentials(tampered, mime, trust_anchors=pki.root)
    assert cred.present and cred.validation_state == "Invalid" and not cred.trusted
    assert any(code.endswith("Hash.mismatch") for code in cred.errors), cred.errors
    assert _reader_json(tampered, mime, pki.root)[0] == "Invalid"


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_without_a_manifest(fmt: str) -> None:
    cred = read_credentials(_image(fmt, (64, 64)), mime_of(fmt))
    assert cred == Credentials(present=False)


def test_a_tampered_or_broken_manifest_is_invalid_not_an_exception(
    original: bytes, assetgen: SigningMaterial, pki: TestPKI
) -> None:
    signed = sign_rendition(
        assetgen, original, "image/png", _rendition(original, "jpeg"), "image/jpeg", ACTIONS
    )
    edited = bytearray(signed)
    at = signed.rfind(b"c2pa.resized")
    edited[at + 6] ^= 0x01  # "c2pa.resized" -> "c2pa.sesized", inside the signed claim
    cred = read_credentials(bytes(edited), "image/jpeg", trust_anchors=pki.root)
    assert cred.present and cred.validation_state == "Invalid" and cred.errors

    at = signed.find(b"jumb")
    broken = signed[: at + 40] + signed[at + 400 :]
    cred = read_credentials(broken, "image/jpeg", trust_anchors=pki.root)
    assert cred.present and cred.validation_state == "Invalid" and cred.errors

    assert read_credentials(b"not an image", "image/png") == Credentials(present=False)


def test_no_remote_manifest_fetch() -> None:
    """A file pointing at a remote manifest is read without fetching it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    hits: list[bytes] = []

    def accept() -> None:
        try:
            conn, _ = server.accept()
            hits.append(conn.recv(100))
            conn.close()
        except TimeoutError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/manifest.c2pa"
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        f'rdf:about="" xmlns:dcterms="http://purl.org/dc/terms/" dcterms:provenance="{url}"/>'
        "</rdf:RDF></x:xmpmeta>"
    )
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, "JPEG", xmp=xmp.encode())
    try:
        cred = read_credentials(buf.getvalue(), "image/jpeg")
    finally:
        thread.join()
        server.close()
    assert hits == []
    assert cred.present and cred.validation_state == "Invalid" and url in cred.errors[0]


# ---------------------------------------------------------------- algorithms, callbacks


@pytest.mark.parametrize(
    "name, alg", [("assetgen-ps256", "ps256"), ("assetgen-ed25519", "ed25519")]
)
def test_other_algorithms(name: str, alg: str, files: dict, original: bytes, pki: TestPKI) -> None:
    material = _load(files, name, alg)
    signed = sign_rendition(
        material, original, "image/png", _rendition(original, "webp"), "image/webp", ACTIONS
    )
    cred = read_credentials(signed, "image/webp", trust_anchors=pki.root)
    assert cred.validation_state == "Trusted" and cred.parent and cred.parent.trusted


def test_a_document_signing_certificate_is_accepted(
    files: dict, original: bytes, pki: TestPKI
) -> None:
    """c2pa's settings-built contexts accept documentSigning only when told (trust_config)."""
    material = _load(files, "doc-signing-only")
    signed = sign_rendition(
        material, original, "image/png", _rendition(original, "png"), "image/png", ACTIONS
    )
    assert read_credentials(signed, "image/png", trust_anchors=pki.root).trusted


_KMS_KEY: dict[str, Leaf] = {}


def kms_sign(data: bytes) -> bytes:
    """Stands for a KMS/HSM: a module-level function, so it pickles by name."""
    return _KMS_KEY["leaf"].sign(data)


@pytest.mark.parametrize("alg", ["es256", "ed25519"])
def test_a_sign_callback_replaces_the_key(alg: str, pki: TestPKI, original: bytes) -> None:
    _KMS_KEY["leaf"] = leaf = pki.leaf("assetgen (KMS)", alg)
    material = SigningMaterial(cert_chain=leaf.chain, alg=alg, private_key=None, sign=kms_sign)
    assert pickle.loads(pickle.dumps(material)) == material
    signed = sign_rendition(
        material, original, "image/png", _rendition(original, "jpeg"), "image/jpeg", ACTIONS
    )
    cred = read_credentials(signed, "image/jpeg", trust_anchors=pki.root)
    assert cred.validation_state == "Trusted" and cred.signer.startswith("assetgen (KMS)")
    assert cred.parent is not None and cred.parent.claim_generator == GENERATOR


def bad_kms_sign(data: bytes) -> bytes:
    return bytes(64)  # not a signature


def test_a_bad_signature_is_refused_at_the_first_signing(
    pki: TestPKI, original: bytes, leaves: dict[str, Leaf]
) -> None:
    """Material built directly (not loaded and checked): the first signature is verified."""
    leaf = leaves["mismatched"]
    for material in (
        SigningMaterial(cert_chain=leaf.chain, alg="es256", private_key=None, sign=bad_kms_sign),
        SigningMaterial(cert_chain=leaf.chain, alg="es256", private_key=leaf.key),
    ):
        rendition = _rendition(original, "png")
        with pytest.raises(SigningError, match="c2pa could not sign") as err:
            sign_rendition(material, original, "image/png", rendition, "image/png", ACTIONS)
        _assert_clean(str(err.value), leaf.key)


# ---------------------------------------------------------------- bad signing material


def _secret_parts(key_pem: str) -> list[str]:
    lines = [ln for ln in key_pem.splitlines() if ln and not ln.startswith("-----")]
    return [*lines, "".join(lines), "PRIVATE KEY"]


def _assert_clean(message: str, *keys: str) -> None:
    for key in keys:
        for part in _secret_parts(key):
            assert part not in message


@pytest.mark.parametrize(
    "name, alg, expect",
    [
        ("mismatched", "es256", "does not match the leaf certificate"),
        ("expired", "es256", "expired on"),
        ("not-yet-valid", "es256", "not valid yet"),
        ("assetgen", "es512", "not supported"),
        ("assetgen", "rs256", "not supported"),
        ("assetgen", "ps256", "needs an RSA key"),
        ("assetgen", "ed25519", "needs an Ed25519 key"),
        ("assetgen-ps256", "es256", "needs an EC P-256 key"),
        ("assetgen", "es384", "needs an EC P-384 key"),
    ],
)
def test_bad_material_is_a_clear_error(
    name: str, alg: str, expect: str, files: dict, leaves: dict[str, Leaf]
) -> None:
    chain, key = files[name]
    with pytest.raises(SigningError) as err:
        load_signing_material(str(chain), str(key), alg)
    message = str(err.value)
    assert expect in message
    if "not supported" not in message:
        assert (chain.name in message) or (key.name in message)
    _assert_clean(message + repr(err.value), leaves[name].key)


def test_missing_and_unreadable_files(files: dict, tmp_path: Path, leaves: dict) -> None:
    chain, key = files["assetgen"]
    with pytest.raises(SigningError, match=r"private key .*nope\.key: file not found"):
        load_signing_material(str(chain), str(tmp_path / "nope.key"), "es256")
    with pytest.raises(SigningError, match=r"certificate chain .*nope\.pem: file not found"):
        load_signing_material(str(tmp_path / "nope.pem"), str(key), "es256")
    with pytest.raises(SigningError, match=r"certificate chain .*: cannot read"):
        load_signing_material(str(tmp_path), str(key), "es256")  # a folder
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(SigningError, match=r"junk\.pem: not a PEM certificate"):
        load_signing_material(str(junk), str(key), "es256")
    with pytest.raises(SigningError, match=r"junk\.pem: not a PEM private key"):
        load_signing_material(str(chain), str(junk), "es256")
    # A certificate where the key should be: named, and its text not echoed.
    with pytest.raises(SigningError, match=r"not a PEM private key") as err:
        load_signing_material(str(chain), str(chain), "es256")
    _assert_clean(str(err.value), leaves["assetgen"].key)


def test_material_from_fsspec_uris(leaves: dict[str, Leaf], memory_dir: str) -> None:
    import fsspec

    leaf = leaves["assetgen"]
    with fsspec.open(f"{memory_dir}/chain.pem", "w") as f:
        f.write(leaf.chain)
    with fsspec.open(f"{memory_dir}/key.pem", "w") as f:
        f.write(leaf.key)
    material = load_signing_material(f"{memory_dir}/chain.pem", f"{memory_dir}/key.pem", "ES256")
    assert material.alg == "es256" and material.cert_chain.count("BEGIN CERTIFICATE") == 2
    with pytest.raises(SigningError, match=r"memory://.*gone\.pem: file not found"):
        load_signing_material(f"{memory_dir}/gone.pem", f"{memory_dir}/key.pem", "es256")


def test_leaf_checks(pki: TestPKI, tmp_path: Path) -> None:
    from cryptography.x509.oid import ExtendedKeyUsageOID

    tls = pki.leaf("tls", ekus=(ExtendedKeyUsageOID.SERVER_AUTH,))
    chain, key = tls.write(tmp_path)
    with pytest.raises(SigningError, match="no extended key usage C2PA accepts"):
        load_signing_material(str(chain), str(key), "es256")
    good = pki.leaf("good")
    chain, key = good.write(tmp_path)
    later = x509.load_pem_x509_certificate(good.cert.encode()).not_valid_after_utc
    with pytest.raises(SigningError, match="expired on"):
        load_signing_material(str(chain), str(key), "es256", now=later.replace(year=later.year + 1))
    reordered = tmp_path / "root-first.pem"
    reordered.write_text(pki.root + good.cert)
    with pytest.raises(SigningError, match=r"(CA certificate|does not match)"):
        load_signing_material(str(reordered), str(key), "es256")


def test_material_never_shows_the_key(assetgen: SigningMaterial, leaves: dict) -> None:
    assert assetgen.private_key and "BEGIN PRIVATE KEY" in assetgen.private_key  # PKCS#8
    for text in (repr(assetgen), str(assetgen), f"{assetgen}"):
        assert "redacted" in text
        _assert_clean(text, assetgen.private_key, leaves["assetgen"].key)
    with pytest.raises(SigningError):
        SigningMaterial(cert_chain=assetgen.cert_chain, alg="es256", private_key=None)
    with pytest.raises(SigningError, match="not supported"):
        SigningMaterial(cert_chain=assetgen.cert_chain, alg="rs1", private_key="x")


# ---------------------------------------------------------------- size, misc


@pytest.mark.parametrize("fmt", FORMATS)
def test_bytes_added_by_signing_a_thumb(
    fmt: str, original: bytes, assetgen: SigningMaterial, record_property
) -> None:
    rendition = _rendition(original, fmt)
    signed = sign_rendition(
        assetgen, original, "image/png", rendition, mime_of(fmt), ["c2pa.resized"]
    )
    added = len(signed) - len(rendition)
    record_property(f"c2pa_bytes_added_{fmt}", added)
    assert 0 < added < 12_000


def test_no_actions_only_opened(original: bytes, assetgen: SigningMaterial, pki: TestPKI) -> None:
    rendition = _rendition(original, "png")
    signed = sign_rendition(assetgen, original, "image/png", rendition, "image/png", [])
    cred = read_credentials(signed, "image/png", trust_anchors=pki.root)
    assert cred.trusted and cred.actions == ["c2pa.opened"]
    assert cred.digital_source_type == DIGITAL_SOURCE_TYPE  # the parent's


def test_unknown_action_and_mime_of() -> None:
    with pytest.raises(ValueError, match="not among"):
        sign_rendition(None, b"", "image/png", b"", "image/png", ["c2pa.painted"])  # type: ignore[arg-type]
    assert [mime_of(f) for f in ("jpeg", "jpg", "png", "webp", "avif", "JPG")] == [
        "image/jpeg",
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/avif",
        "image/jpeg",
    ]
    with pytest.raises(ValueError):
        mime_of("gif")


# ---------------------------------------------------------------- overlays


def test_overlays_are_placed_in_the_manifest_with_the_logo_as_ingredient(
    original: bytes, assetgen: SigningMaterial, pki: TestPKI, tmp_path: Path
) -> None:
    from assetgen.tasks.renditions.credentials import OVERLAY_TEXT_KEY
    from assetgen.tasks.renditions.signing import render_and_sign

    logo = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    logo.paste((255, 0, 0, 255), (20, 0, 40, 20))
    logo_path = tmp_path / "brand-logo.png"
    logo.save(logo_path)
    layers = [
        {"type": "box", "name": "panel", "width": 0.5, "fill": "#000000"},
        {"type": "image", "name": "logo", "uri": str(logo_path), "anchor": "top-end"},
    ]
    if Path("/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf").exists():
        layers.append({"type": "text", "name": "price", "content": "price", "max_size": 30})
    preset = Preset(width=300, height=150, fit="cover", format="png", overlays=layers)
    (r,) = render_and_sign(original, {"banner": preset}, assetgen, {"price": "$24.99"}, "row-1")
    assert r.error is None and r.credentials == "signed"

    state, store = _reader_json(r.data, "image/png", pki.root)
    assert state == "Trusted", store.get("validation_results")
    active = store["manifests"][store["active_manifest"]]
    ingredients = {i["label"]: i for i in active["ingredients"]}
    (actions,) = [a for a in active["assertions"] if a["label"].startswith("c2pa.actions")]
    placed = [a for a in actions["data"]["actions"] if a["action"] == "c2pa.placed"]
    assert len(placed) == 1 and "logo" in placed[0]["description"]  # the box is no ingredient
    (link,) = placed[0]["parameters"]["ingredients"]
    target = ingredients[link["url"].rsplit("/", 1)[-1]]
    assert target["relationship"] == "componentOf" and target["title"] == "brand-logo.png"
    assert target["format"] == "image/png"
    assert sorted(i["relationship"] for i in ingredients.values()) == ["componentOf", "parentOf"]
    if len(layers) == 3:
        (edited,) = [a for a in actions["data"]["actions"] if a["action"] == "c2pa.edited"]
        assert edited["parameters"][OVERLAY_TEXT_KEY] == {"layer": "price", "text": "$24.99"}

    cred = read_credentials(r.data, "image/png", trust_anchors=pki.root)
    assert cred.trusted and cred.errors == [] and "c2pa.placed" in cred.actions
    assert cred.parent is not None and cred.parent.claim_generator == GENERATOR
    assert cred.digital_source_type == DIGITAL_SOURCE_TYPE

    # Without overlays nothing is placed: the plain rendition's manifest is as before.
    plain = Preset(width=300, height=150, fit="cover", format="png")
    (p,) = render_and_sign(original, {"plain": plain}, assetgen)
    assert "c2pa.placed" not in read_credentials(p.data, "image/png").actions
