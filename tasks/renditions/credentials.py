"""C2PA Content Credentials: renditions signed as edits of their original, and read back.

A rendition gets a manifest signed by assetgen (Builder intent EDIT): its
original is the `parentOf` ingredient with the original's own manifest
embedded, so a verifier walks from the rendition to the generator (OpenAI's
manifest on a real image). Claim and ingredient thumbnails are off: they
would add up to a megabyte per file for nothing a shop needs.

c2pa-python 0.38 (c2pa-rs 0.91) facts relied on: a settings-built Context
accepts only emailProtection/timeStamping/OCSPSigning EKUs unless
`trust.trust_config` lists more, so every context here passes c2pa-rs's own
list (`SIGNING_EKUS`); remote manifest fetch (on by default) and OCSP fetch
are off; trust anchors go in `trust.trust_anchors`. The parent ingredient is
built once per original as an ingredient archive (3 ms) and reused by each of
its renditions (under 1 ms), which keeps a signature at a few milliseconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

import c2pa
import fsspec
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from PIL import Image
from pydantic import BaseModel

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
ALGORITHMS = ("es256", "es384", "ps256", "ed25519")
ACTIONS = ("c2pa.resized", "c2pa.cropped", "c2pa.converted")
CLAIM_GENERATOR = "assetgen"
# The parameter of a text overlay's c2pa.edited action that holds its layer and text.
OVERLAY_TEXT_KEY = "org.assetgen.overlay"
# c2pa-rs's accepted EKUs (valid_eku_oids.cfg): emailProtection, documentSigning,
# timeStamping, OCSPSigning, Microsoft C2PA signing, C2PA claim signing.
SIGNING_EKUS = ("1.3.6.1.5.5.7.3.4", "1.3.6.1.5.5.7.3.36", "1.3.6.1.5.5.7.3.8", "1.3.6.1.5.5.7.3.9")
SIGNING_EKUS += ("1.3.6.1.4.1.311.76.59.1.9", "1.3.6.1.4.1.62558.2.1")
_MIMES = {"jpeg": "image/jpeg", "jpg": "image/jpeg", "png": "image/png"}
_MIMES |= {"webp": "image/webp", "avif": "image/avif"}
_BASE_SETTINGS = {
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
    "trust": {"trust_config": "\n".join(SIGNING_EKUS)},
}
_UNTRUSTED, _TRUSTED = "signingCredential.untrusted", "signingCredential.trusted"


class SigningError(ValueError):
    """Bad signing material. The message names files and reasons, never key material."""


@dataclass(frozen=True)
class Placed:
    """A logo or badge drawn onto a rendition: a `componentOf` ingredient, by a c2pa.placed."""

    layer: str  # the overlay layer's name or label
    title: str  # the ingredient's title: the logo's file name
    mime: str
    data: bytes = dataclasses.field(repr=False)


@dataclass(frozen=True)
class Written:
    """Text drawn onto a rendition: recorded as a c2pa.edited action with the exact text."""

    layer: str
    text: str


@dataclass(frozen=True, repr=False)
class SigningMaterial:
    """What signs renditions: a PEM certificate chain (leaf first) and a way to sign."""

    cert_chain: str  # PEM text
    alg: str  # one of ALGORITHMS
    private_key: str | None  # PKCS#8 PEM text; None when `sign` is given
    timestamp_url: str | None = None
    # A KMS/HSM hook: bytes to sign -> signature bytes (what c2pa's Signer.from_callback
    # takes). Must be picklable (a module-level function) when used across processes.
    sign: Callable[[bytes], bytes] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "alg", _check_alg(self.alg))
        if (self.private_key is None) == (self.sign is None):
            raise SigningError("signing material needs either a private key or a sign callback")
        if self.timestamp_url and not self.timestamp_url.startswith(("http://", "https://")):
            raise SigningError(f"timestamp_url {self.timestamp_url!r} is not an http(s) URL")

    def __repr__(self) -> str:
        n, fn = self.cert_chain.count("BEGIN CERTIFICATE"), getattr(self.sign, "__qualname__", None)
        key = "<redacted>" if self.private_key else None
        return (
            f"SigningMaterial(alg={self.alg!r}, cert_chain=<{n} certificate(s)>, "
            f"private_key={key}, sign={fn}, timestamp_url={self.timestamp_url!r})"
        )

    __str__ = __repr__


# ---------------------------------------------------------------- loading and checks


def _check_alg(alg: str) -> str:
    a = str(alg).strip().lower()
    if a not in ALGORITHMS:
        raise SigningError(f"alg {alg!r} is not supported: use {', '.join(ALGORITHMS)}")
    return a


def _read(uri: str, what: str, storage_options: dict | None) -> bytes:
    try:
        with fsspec.open(uri, "rb", **(storage_options or {})) as f:
            return f.read()
    except FileNotFoundError:
        raise SigningError(f"{what} {uri}: file not found") from None
    except Exception as e:  # any backend's error (OSError, botocore, a bad URI...)
        raise SigningError(f"{what} {uri}: cannot read it ({type(e).__name__})") from None


_NEEDS = {"es256": "an EC P-256 key", "es384": "an EC P-384 key"}
_NEEDS |= {"ps256": "an RSA key of 2048 bits or more", "ed25519": "an Ed25519 key"}


def _key_kind(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"an EC {key.curve.name} key"
    if isinstance(key, rsa.RSAPrivateKey):
        return f"an RSA {key.key_size}-bit key"
    return "an Ed25519 key" if isinstance(key, ed25519.Ed25519PrivateKey) else "another key type"


def _fits(key: object, alg: str) -> bool:
    if alg == "ps256":
        return isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048
    if alg == "ed25519":
        return isinstance(key, ed25519.Ed25519PrivateKey)
    curve = "secp256r1" if alg == "es256" else "secp384r1"
    return isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == curve


def _check_leaf(leaf: x509.Certificate, uri: str, now: datetime) -> None:
    """The checks c2pa-rs makes of a signing certificate that we can name clearly."""
    cn = ", ".join(a.value for a in leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME))
    where = f"certificate chain {uri} (leaf {cn or leaf.subject.rfc4514_string()!r})"
    if now < leaf.not_valid_before_utc:
        raise SigningError(f"{where}: not valid yet (from {leaf.not_valid_before_utc:%Y-%m-%d})")
    if now > leaf.not_valid_after_utc:
        raise SigningError(f"{where}: expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    ext = {e.oid.dotted_string: e.value for e in leaf.extensions}
    if getattr(ext.get("2.5.29.19"), "ca", False):  # basicConstraints
        raise SigningError(f"{where}: is a CA certificate; put the signing certificate first")
    if not getattr(ext.get("2.5.29.15"), "digital_signature", False):  # keyUsage
        raise SigningError(f"{where}: key usage lacks digitalSignature")
    ekus = {o.dotted_string for o in ext.get("2.5.29.37", [])}  # extendedKeyUsage
    if not ekus & set(SIGNING_EKUS):
        raise SigningError(
            f"{where}: no extended key usage C2PA accepts (e.g. emailProtection "
            "1.3.6.1.5.5.7.3.4 or documentSigning 1.3.6.1.5.5.7.3.36)"
        )


def load_signing_material(
    cert_chain_uri: str,
    private_key_uri: str,
    alg: str,
    timestamp_url: str | None = None,
    storage_options: dict | None = None,
    now: datetime | None = None,
) -> SigningMaterial:
    """Read the PEM files (local paths or fsspec URIs) and check them, before anything is spent:
    missing/unreadable file, not PEM, the key does not match the leaf certificate, the leaf is
    expired or not yet valid, the algorithm is not supported or does not fit the key type:
    each a SigningError naming the file (not its content) and the reason.

    Any unencrypted PEM private key is accepted and kept as PKCS#8 (what c2pa takes). Last, a
    tiny image is signed (without the timestamp authority) so that whatever else the SDK
    refuses is refused here too.
    """
    alg = _check_alg(alg)
    chain_pem = _read(cert_chain_uri, "certificate chain", storage_options)
    key_pem = _read(private_key_uri, "private key", storage_options)
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        raise SigningError(f"certificate chain {cert_chain_uri}: not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise SigningError(f"private key {private_key_uri}: encrypted (not supported)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise SigningError(f"private key {private_key_uri}: not a PEM private key") from None
    del key_pem
    if not _fits(key, alg):
        raise SigningError(
            f"private key {private_key_uri}: alg {alg} needs {_NEEDS[alg]}, "
            f"this is {_key_kind(key)}"
        )
    _check_leaf(certs[0], cert_chain_uri, now or datetime.now(UTC))
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != certs[0].public_key().public_bytes(*spki):
        raise SigningError(
            f"private key {private_key_uri}: does not match the leaf certificate of "
            f"{cert_chain_uri} (its public key is another one)"
        )
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    chain = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)
    material = SigningMaterial(chain, alg, pkcs8, timestamp_url)
    trial = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(trial, "PNG")
    try:  # what else the SDK refuses, refused now (without contacting the timestamp authority)
        _Signing(dataclasses.replace(material, timestamp_url=None), CLAIM_GENERATOR).sign(
            "image/png", trial.getvalue()
        )
    except SigningError as e:
        raise SigningError(f"certificate chain {cert_chain_uri}: {e}") from None
    return material


def _reason(e: BaseException) -> str:
    """An SDK error, short, without JUMBF URLs or anything that looks like encoded key data."""
    text = re.sub(r"\s*\(self#jumbf=[^)]*\)", "", str(e))
    text = re.sub(r"[A-Za-z0-9+/=]{40,}", "<...>", text)
    return " ".join(text.split())[:300]


# ---------------------------------------------------------------- signing


class _Signing:
    """A c2pa Context and Signer for one SigningMaterial and claim generator, reused per call."""

    def __init__(self, material: SigningMaterial, generator: str) -> None:
        info: dict = {"name": generator}
        if generator == CLAIM_GENERATOR:
            with contextlib.suppress(PackageNotFoundError):
                info["version"] = version("assetgen")
        settings = {**_BASE_SETTINGS, "builder": {"thumbnail": {"enabled": False}}}
        settings["builder"]["claim_generator_info"] = info
        # The first signature is verified by the SDK (verify_after_sign: it refuses a bad
        # certificate profile or a callback's bad signature); later ones skip that (-1.4 ms).
        settings["verify"] = {**_BASE_SETTINGS["verify"], "verify_after_sign": True}
        self.checking = c2pa.Context.from_dict(settings)
        settings["verify"] = {**_BASE_SETTINGS["verify"], "verify_after_sign": False}
        self.context = c2pa.Context.from_dict(settings)
        self.checked = False
        alg = getattr(c2pa.C2paSigningAlg, material.alg.upper())
        if material.sign is not None:
            cb, certs, tsa = material.sign, material.cert_chain, material.timestamp_url
            self.signer = c2pa.Signer.from_callback(cb, alg, certs, tsa)
        else:
            key, certs = (material.private_key or "").encode(), material.cert_chain.encode()
            info = c2pa.C2paSignerInfo(alg, certs, key, material.timestamp_url)
            self.signer = c2pa.Signer.from_info(info)
        self._parents: list[tuple[bytes, str, bytes]] = []  # (original, mime, archive)
        self._lock = threading.Lock()

    def parent_archive(self, original: bytes, mime: str) -> bytes:
        """The original as a `parentOf` ingredient archive, kept for its next renditions."""
        with self._lock:
            for data, m, archive in self._parents:
                if m == mime and (data is original or data == original):
                    return archive
        ext = next((k for k, v in _MIMES.items() if v == mime), "bin")
        with c2pa.Builder({}, self.context) as builder:
            spec = {"title": f"original.{ext}", "relationship": "parentOf", "label": "parent"}
            builder.add_ingredient(spec, mime, io.BytesIO(original))
            out = io.BytesIO()
            builder.write_ingredient_archive("parent", out)
        with self._lock:
            self._parents = [*self._parents[-1:], (original, mime, out.getvalue())]
        return out.getvalue()

    def sign(
        self,
        mime: str,
        data: bytes,
        parent: tuple[bytes, str] | None = None,
        actions: list[str] | tuple[()] = (),
        title: str | None = None,
        placed: Sequence[Placed] = (),
        written: Sequence[Written] = (),
    ) -> bytes:
        """`data` signed: with a parent (original, mime) as an EDIT, without it as a CREATE."""
        try:
            context = self.context if self.checked else self.checking
            with c2pa.Builder({"title": title} if title else {}, context) as builder:
                if parent is None:
                    builder.set_intent(c2pa.C2paBuilderIntent.CREATE, _TRAINED)
                else:
                    builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
                    builder.add_ingredient_from_archive(io.BytesIO(self.parent_archive(*parent)))
                for action in actions:
                    builder.add_action({"action": action, "digitalSourceType": DIGITAL_SOURCE_TYPE})
                _add_overlays(builder, placed, written)
                out = io.BytesIO()
                builder.sign(self.signer, mime, io.BytesIO(data), out)
            self.checked = True
            return out.getvalue()
        except c2pa.C2paError as e:
            raise SigningError(f"c2pa could not sign the {mime} image: {_reason(e)}") from None


def _add_overlays(
    builder: c2pa.Builder, placed: Sequence[Placed], written: Sequence[Written]
) -> None:
    """Each logo as a `componentOf` ingredient with a c2pa.placed action pointing at it
    (the SDK turns the ingredient's label into the hashed link), each text as c2pa.edited.

    No digitalSourceType on these: a logo and typed text are not AI-made, and the
    rendition's own type stays the parent's (trainedAlgorithmicMedia).
    """
    for i, logo in enumerate(placed):
        label = f"overlay-{i}"
        spec = {"title": logo.title, "relationship": "componentOf", "label": label}
        builder.add_ingredient(spec, logo.mime, io.BytesIO(logo.data))
        builder.add_action(
            {
                "action": "c2pa.placed",
                "description": f"overlay layer {logo.layer}: {logo.title}",
                "parameters": {"ingredientIds": [label]},
            }
        )
    for text in written:
        builder.add_action(
            {
                "action": "c2pa.edited",
                "description": f"overlay layer {text.layer}: text drawn",
                "parameters": {OVERLAY_TEXT_KEY: {"layer": text.layer, "text": text.text}},
            }
        )


_TRAINED = c2pa.C2paDigitalSourceType.TRAINED_ALGORITHMIC_MEDIA
_SIGNINGS: dict[tuple[int, SigningMaterial, str], _Signing] = {}
_SIGNINGS_LOCK = threading.Lock()


def _signing(material: SigningMaterial, generator: str) -> _Signing:
    key = (os.getpid(), material, generator)  # a forked child builds its own
    with _SIGNINGS_LOCK:
        if key not in _SIGNINGS:
            if len(_SIGNINGS) >= 16:
                _SIGNINGS.clear()
            _SIGNINGS[key] = _Signing(material, generator)
        return _SIGNINGS[key]


def sign_rendition(
    material: SigningMaterial,
    original: bytes,
    original_mime: str,
    rendition: bytes,
    rendition_mime: str,
    actions: list[str],
    title: str | None = None,
    placed: Sequence[Placed] = (),
    written: Sequence[Written] = (),
) -> bytes:
    """The rendition with a C2PA manifest signed as an edit (c2pa Builder intent EDIT): the
    original as its `parentOf` ingredient with the original's own manifest embedded (so the
    chain reaches the generator's), the given actions (from "c2pa.resized", "c2pa.cropped",
    "c2pa.converted"), each with the digital source type trainedAlgorithmicMedia; the SDK adds
    `c2pa.opened` for the parent. No claim or ingredient thumbnail, claim generator
    `assetgen`. The rendition's own bytes (its XMP packet included) are what is signed.
    jpeg, png, webp and avif. With no actions only `c2pa.opened` is recorded (the digital
    source type then reads as the parent's). The c2pa Context/Signer are cached per process
    and material, the parent ingredient per original (the last two): a call costs ~3 ms.
    Overlays: each `placed` logo becomes a `componentOf` ingredient with a `c2pa.placed`
    action linking it, each `written` text a `c2pa.edited` action holding the text.
    """
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise ValueError(f"actions {unknown} are not among {', '.join(ACTIONS)}")
    signing = _signing(material, CLAIM_GENERATOR)
    parent = (original, original_mime)
    return signing.sign(rendition_mime, rendition, parent, actions, title, placed, written)


def sign_original(
    material: SigningMaterial, image: bytes, mime: str, generator: str = "OpenAI test generator"
) -> bytes:
    """An image signed as created by a trained algorithm (intent CREATE, trainedAlgorithmicMedia),
    the way OpenAI's images arrive: what the test server and the placeholder provider use."""
    return _signing(material, generator).sign(mime, image)


# ---------------------------------------------------------------- reading


class Credentials(BaseModel):
    """What a file's C2PA manifest says, for sidecars, the catalog and `assetgen provenance`."""

    present: bool
    validation_state: str | None = None  # "Trusted", "Valid", "Invalid" as c2pa reports it
    trusted: bool = False  # the state is Trusted: valid, and the signer chains to an anchor
    claim_generator: str | None = None
    signer: str | None = None  # the signing certificate's common name (issuer)
    digital_source_type: str | None = None
    actions: list[str] = []
    parent: Credentials | None = None  # the parentOf ingredient's manifest, if any (recursive)
    errors: list[str] = []  # validation failures as c2pa reports them (codes)


@lru_cache(maxsize=8)
def _reader_context(trust_anchors: str | None, pid: int) -> c2pa.Context:
    trust = {
        **_BASE_SETTINGS["trust"],
        **({"trust_anchors": trust_anchors} if trust_anchors else {}),
    }
    return c2pa.Context.from_dict({**_BASE_SETTINGS, "trust": trust})


def _codes(items: list | None) -> list[str]:
    return [i["code"] for i in items or [] if i.get("code") and i["code"] != _UNTRUSTED]


def _parent_state(recorded: dict, delta: dict) -> tuple[str, list[str]]:
    """The parent's state now: what was recorded at ingest, changed by the reader's deltas."""
    errors = _codes(recorded.get("failure"))
    errors += [c for c in _codes(delta.get("failure")) if c not in errors]
    now = {i.get("code") for i in delta.get("success", [])}
    then = {i.get("code") for i in recorded.get("success", [])}
    revoked = _UNTRUSTED in {i.get("code") for i in delta.get("failure", [])}
    trusted = _TRUSTED in now or (_TRUSTED in then and not revoked)
    return ("Invalid" if errors else "Trusted" if trusted else "Valid"), errors


def _describe(
    store: dict, label: str, state: str | None, errors: list[str], deltas: dict, depth: int = 0
) -> Credentials:
    manifest = store.get("manifests", {}).get(label) or {}
    info = manifest.get("claim_generator_info") or [{}]
    generator = manifest.get("claim_generator") or info[0].get("name")
    sig = manifest.get("signature_info") or {}
    cn, issuer = sig.get("common_name"), sig.get("issuer")
    signer = f"{cn} ({issuer})" if cn and issuer and cn != issuer else cn or issuer
    actions: list[str] = []
    source_type = None
    for assertion in manifest.get("assertions", []):
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            for action in (assertion.get("data") or {}).get("actions", []):
                actions.append(action.get("action"))
                source_type = source_type or action.get("digitalSourceType")
    parent = None
    for ing in manifest.get("ingredients", []):
        if ing.get("relationship") == "parentOf" and ing.get("active_manifest") and depth < 16:
            uri = f"self#jumbf=/c2pa/{label}/c2pa.assertions/{ing.get('label')}"
            recorded = (ing.get("validation_results") or {}).get("activeManifest") or {}
            p_state, p_errors = _parent_state(recorded, deltas.get(uri) or {})
            parent = _describe(store, ing["active_manifest"], p_state, p_errors, deltas, depth + 1)
            break
    return Credentials(
        present=True,
        validation_state=state,
        trusted=state == "Trusted",
        claim_generator=generator,
        signer=signer,
        digital_source_type=source_type or (parent.digital_source_type if parent else None),
        actions=actions,
        parent=parent,
        errors=errors,
    )


def read_credentials(data: bytes, mime: str, trust_anchors: str | None = None) -> Credentials:
    """The file's C2PA manifest chain, validated offline (remote manifest fetch off), against
    `trust_anchors` (PEM) when given. A file without a manifest: present=False, no exception;
    a corrupt or tampered manifest: present=True, validation_state "Invalid", errors filled
    (all failure codes of the chain; `signingCredential.untrusted` is left to `trusted`).
    `digital_source_type` is the manifest's own (on its actions), else its parent's.
    """
    context = _reader_context(trust_anchors or None, os.getpid())
    try:
        with c2pa.Reader(mime, io.BytesIO(data), context=context) as reader:
            store = json.loads(reader.json())
    except c2pa.C2paError.ManifestNotFound:
        return Credentials(present=False)
    except c2pa.C2paError as e:
        if b"jumb" not in data and b"c2pa" not in data:
            return Credentials(present=False)
        reason = _reason(e)  # the SDK's own "Kind: message", e.g. a remote manifest not fetched
        if ":" not in reason.split(" ", 1)[0]:
            reason = f"{type(e).__name__.lstrip('_').removeprefix('C2pa') or 'Error'}: {reason}"
        return Credentials(present=True, validation_state="Invalid", errors=[reason])
    results = store.get("validation_results") or {}
    deltas = {
        d.get("ingredientAssertionURI"): d.get("validationDeltas") or {}
        for d in results.get("ingredientDeltas", [])
    }
    if results:
        errors = _codes(results.get("activeManifest", {}).get("failure"))
        for delta in deltas.values():
            errors += [c for c in _codes(delta.get("failure")) if c not in errors]
    else:
        errors = _codes(store.get("validation_status"))
    state = store.get("validation_state") or ("Invalid" if errors else "Valid")
    label = store.get("active_manifest")
    if not label:
        return Credentials(present=True, validation_state=state, errors=errors)
    return _describe(store, label, state, errors, deltas)


def mime_of(fmt: str) -> str:
    """The MIME type of a rendition format: "jpeg"/"jpg", "png", "webp", "avif"."""
    f = fmt.strip().lower().lstrip(".")
    if f in _MIMES or f in _MIMES.values():
        return _MIMES.get(f, f)
    raise ValueError(f"no C2PA signing for format {fmt!r}: use jpeg, png, webp or avif")
