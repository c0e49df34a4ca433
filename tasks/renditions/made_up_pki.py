"""A made-up PKI for C2PA signing, made at run time with `cryptography`.

What the placeholder provider signs its originals with (the way OpenAI's
images arrive signed) and what the tests and benches sign with; nobody
trusts it unless given its root. No certificate or key is checked in.
`TestPKI` makes a root CA and leaf certificates shaped the way c2pa-rs
checks a signing certificate
(`check_certificate_profile`, C2PA spec 14.5.1):

- X.509 v3, issued by the root (self-signed leaves are refused), signed
  with ecdsa-with-SHA256 (an allowed certificate signature algorithm);
- basicConstraints CA:FALSE; keyUsage (critical) digitalSignature and no
  keyCertSign;
- extendedKeyUsage present, not anyExtendedKeyUsage, with an OID on the
  SDK's accepted list (`valid_eku_oids.cfg`), never timeStamping or
  OCSPSigning mixed with others. Default here: emailProtection (the one
  a c2pa `Context` accepts without `trust.trust_config`, so a plain
  `c2pa.Reader` with only trust anchors agrees), documentSigning
  1.3.6.1.5.5.7.3.36 and the C2PA claim-signing OID 1.3.6.1.4.1.62558.2.1;
- an Authority Key Identifier (required on every certificate checked), a
  Subject Key Identifier, no unknown critical extension;
- keys: EC P-256 / P-384, RSA >= 2048 bits (PS256), Ed25519;
- valid now (without a timestamp the SDK checks validity at validation time).

Bad material for the error paths: `expired`, `not_yet_valid`, and
`mismatched_key` (a key that is not the certificate's).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
C2PA_CLAIM_SIGNING = ObjectIdentifier("1.3.6.1.4.1.62558.2.1")

GENERATOR_NAME = "OpenAI test generator"
DEFAULT_EKUS = (ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING, C2PA_CLAIM_SIGNING)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _new_key(alg: str) -> PrivateKey:
    if alg == "es256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "es384":
        return ec.generate_private_key(ec.SECP384R1())
    if alg == "ps256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"no test key for {alg!r}")


def key_pem(key: PrivateKey) -> str:
    """PKCS#8 PEM, unencrypted."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _name(cn: str, org: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "FOR TESTING ONLY"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


@dataclass(frozen=True)
class Leaf:
    """A signing certificate and its key, as PEM text."""

    name: str
    alg: str
    cert: str  # the leaf alone
    chain: str  # leaf first, then the issuing root
    key: str  # PKCS#8
    _key_obj: PrivateKey = field(repr=False, compare=False)

    def sign(self, data: bytes) -> bytes:
        """Sign the way c2pa's Signer.from_callback expects for this algorithm."""
        return sign_with(self._key_obj, self.alg, data)

    def write(self, folder: str | Path, stem: str | None = None) -> tuple[Path, Path]:
        """Write `<stem>.pem` (the chain) and `<stem>.key`; return both paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        stem = stem or self.name
        chain, key = folder / f"{stem}.pem", folder / f"{stem}.key"
        chain.write_text(self.chain)
        key.write_text(self.key)
        return chain, key


def sign_with(key: PrivateKey, alg: str, data: bytes) -> bytes:
    """A signature over `data` with `key` for a C2PA algorithm (DER ECDSA is accepted)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        digest = hashes.SHA384() if alg == "es384" else hashes.SHA256()
        return key.sign(data, ec.ECDSA(digest))
    if isinstance(key, rsa.RSAPrivateKey):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        return key.sign(data, pss, hashes.SHA256())
    return key.sign(data)


class TestPKI:
    """A root CA that issues C2PA signing leaves (and broken ones)."""

    __test__ = False  # not a pytest test class

    def __init__(self, org: str = "assetgen test PKI") -> None:
        self.org = org
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self._root_key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(f"{org} Root CA", org)
        ski = x509.SubjectKeyIdentifier.from_public_key(self._root_key.public_key())
        self._root = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(days=1))
            .not_valid_after(self.now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .sign(self._root_key, hashes.SHA256())
        )
        self.root = cert_pem(self._root)

    def write_root(self, folder: str | Path, name: str = "root.pem") -> Path:
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.root)
        return path

    def leaf(
        self,
        name: str,
        alg: str = "es256",
        *,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        org: str | None = None,
        ekus: tuple[ObjectIdentifier, ...] = DEFAULT_EKUS,
    ) -> Leaf:
        """A C2PA signing leaf for `name` (its common name), issued by the root."""
        key = _new_key(alg)
        cert = self._issue(key, name, org or self.org, not_before, not_after, ekus)
        pem = cert_pem(cert)
        return Leaf(name, alg, pem, pem + self.root, key_pem(key), key)

    def generator(self, alg: str = "es256") -> Leaf:
        """The leaf that stands for OpenAI signing its images (claim generator of originals)."""
        return self.leaf(GENERATOR_NAME, alg, org="OpenAI (test)")

    def assetgen(self, alg: str = "es256") -> Leaf:
        """The leaf assetgen signs renditions with."""
        return self.leaf("assetgen", alg)

    def expired(self, name: str = "expired", alg: str = "es256") -> Leaf:
        return self.leaf(
            name,
            alg,
            not_before=self.now - dt.timedelta(days=60),
            not_after=self.now - dt.timedelta(days=1),
        )

    def not_yet_valid(self, name: str = "not-yet-valid", alg: str = "es256") -> Leaf:
        return self.leaf(
            name,
            alg,
            not_before=self.now + dt.timedelta(days=1),
            not_after=self.now + dt.timedelta(days=60),
        )

    def mismatched_key(self, name: str = "mismatched", alg: str = "es256") -> Leaf:
        """A good certificate paired with someone else's key of the same type."""
        good = self.leaf(name, alg)
        other = _new_key(alg)
        return Leaf(name, alg, good.cert, good.chain, key_pem(other), other)

    def _issue(
        self,
        key: PrivateKey,
        cn: str,
        org: str,
        not_before: dt.datetime | None,
        not_after: dt.datetime | None,
        ekus: tuple[ObjectIdentifier, ...],
    ) -> x509.Certificate:
        root_ski = self._root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return (
            x509.CertificateBuilder()
            .subject_name(_name(cn, org))
            .issuer_name(self._root.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or self.now - dt.timedelta(hours=1))
            .not_valid_after(not_after or self.now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski.value),
                critical=False,
            )
            .sign(self._root_key, hashes.SHA256())
        )


@cache
def shared_pki() -> TestPKI:
    """One root per process (RSA key generation is the slow part: make leaves once)."""
    return TestPKI()
