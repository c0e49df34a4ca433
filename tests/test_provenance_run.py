"""Provenance through a whole run: originals signed by the generator, renditions signed by us.

The test server signs its images with a test generator certificate, as
OpenAI does; the job config signs renditions with an assetgen certificate of
the same test root, which `--trust-anchors` trusts.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import c2pa
import pytest
from typer.testing import CliRunner, Result

from assetgen.flows.cli.app import app
from assetgen.tasks.catalog.table import read_catalog
from assetgen.tasks.renditions.credentials import mime_of, read_credentials
from assetgen.tasks.renditions.made_up_pki import GENERATOR_NAME, TestPKI, shared_pki
from assetgen.tasks.store.assets import SIDECAR, AssetStore, Sidecar
from tests.conftest import FAKE_KEY
from tests.fakes.images_api import FakeOpenAI

pytestmark = pytest.mark.usefixtures("prefect_harness")
RENDITIONS = ["thumb", "listing", "og"]  # webp, webp, jpeg; og is a cover crop


@pytest.fixture
def sdk(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    return fake


def config(tmp_path: Path, signing: tuple[Path, Path] | None, alg: str = "es256") -> Path:
    text = f"store: {tmp_path / 'store'}\nprovider: openai\nrenditions: {RENDITIONS}\n"
    if signing:
        chain, key = signing
        text += f"provenance: {{c2pa: {{cert_chain: {chain}, private_key: {key}, alg: {alg}}}}}\n"
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "m.csv"
    path.write_text("id,prompt,size\nsofa,a green sofa,1536x1024\nlamp,a brass lamp,1024x1024\n")
    return path


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def test_a_signed_run_leaves_renditions_that_verify_back_to_the_generator(
    sdk: FakeOpenAI, tmp_path: Path
) -> None:
    pki = shared_pki()
    leaf = pki.assetgen()
    chain, key = leaf.write(tmp_path / "pki")
    root = pki.write_root(tmp_path / "pki")
    cfg = config(tmp_path, (chain, key))

    result = invoke("run", manifest(tmp_path), "-c", cfg, "--ipm", "6000", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["generated"] == 2 and summary["rendition_errors"] == []
    assert "signed by assetgen" in summary["provenance"]

    store = AssetStore(str(tmp_path / "store"))
    files = []
    for folder in store.existing().values():
        sidecar = Sidecar.model_validate_json(store.read_bytes(f"{folder}/{SIDECAR}"))
        # The original as it came: OpenAI's (here the generator's) manifest, read and recorded.
        assert sidecar.credentials is not None and sidecar.credentials["present"]
        assert GENERATOR_NAME in sidecar.credentials["signer"]
        assert sidecar.credentials["digital_source_type"].endswith("trainedAlgorithmicMedia")
        assert {r.credentials for r in sidecar.renditions} == {"signed"}
        for r in sidecar.renditions:
            path = tmp_path / "store" / folder / r.file
            files.append(path)
            found = read_credentials(path.read_bytes(), mime_of(r.format), pki.root)
            assert found.validation_state == "Trusted" and found.trusted, found.errors
            assert found.parent is not None and GENERATOR_NAME in str(found.parent.signer)
            assert "c2pa.resized" in found.actions
            assert ("c2pa.cropped" in found.actions) == (r.name == "og")
            assert ("c2pa.converted" in found.actions) == (r.format != "png")
            # c2pa-python's own Reader agrees.
            context = c2pa.Context.from_dict(
                {"trust": {"trust_anchors": pki.root}, "verify": {"remote_manifest_fetch": False}}
            )
            data = io.BytesIO(path.read_bytes())
            with c2pa.Reader(mime_of(r.format), data, context=context) as reader:
                assert reader.get_validation_state() == "Trusted"

    checked = invoke("provenance", *files, "--trust-anchors", root, "--json")
    assert checked.exit_code == 0, checked.output
    chains = json.loads(checked.stdout)["files"]
    assert len(chains) == 6 and all(c["trusted"] for c in chains)
    assert all(GENERATOR_NAME in c["parent"]["signer"] for c in chains)
    text = invoke("provenance", files[0], "--trust-anchors", root).stdout
    assert "Trusted (trusted)" in text and "parent: claim by" in text

    catalog = read_catalog(store)
    assert set(catalog.column("rendition_credentials").to_pylist()) == {"signed"}
    assert all(GENERATOR_NAME in s for s in catalog.column("c2pa_signer").to_pylist())
    sheet = Path(summary["report"]).read_text()
    assert sheet.count('class="cred signed"') == 2
    # The key went nowhere: not the store, not the output.
    body = "".join(leaf.key.splitlines()[1:-1])[:48]
    assert body and body not in result.output
    for path in (tmp_path / "store").rglob("*"):
        if path.is_file():
            assert body.encode() not in path.read_bytes(), path

    # refresh re-renders and signs again, with no API call.
    requests = len(sdk.requests)
    thumb = files[0].parent / "thumb.webp"
    thumb.unlink()
    refreshed = invoke("refresh", "-c", cfg, "--preset", "thumb", "--json")
    assert refreshed.exit_code == 0, refreshed.output
    assert len(sdk.requests) == requests
    assert read_credentials(thumb.read_bytes(), "image/webp", pki.root).trusted


def test_a_file_without_credentials_or_with_broken_ones_fails_the_check(tmp_path: Path) -> None:
    plain = tmp_path / "plain.png"
    from PIL import Image

    Image.new("RGB", (64, 64), "red").save(plain)
    result = invoke("provenance", plain)
    assert result.exit_code == 1 and "no C2PA manifest" in result.stdout
    assert invoke("provenance", tmp_path / "missing.png").exit_code == 2


@pytest.mark.parametrize("case", ["missing key", "mismatched key", "expired", "bad alg"])
def test_bad_signing_material_stops_before_anything_is_spent(
    sdk: FakeOpenAI, tmp_path: Path, case: str
) -> None:
    pki = TestPKI()
    leaf = {"mismatched key": pki.mismatched_key, "expired": pki.expired}.get(case, pki.assetgen)()
    chain, key = leaf.write(tmp_path / "pki")
    if case == "missing key":
        key.unlink()
    cfg = config(tmp_path, (chain, key), alg="ed25519" if case == "bad alg" else "es256")
    plan = ("plan", manifest(tmp_path), "-c", cfg, "--rejects", tmp_path / "r.csv")
    for args in (("run", manifest(tmp_path), "-c", cfg), plan):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert "provenance.c2pa" in result.output
        assert "PRIVATE KEY" not in result.output
        assert leaf.key.splitlines()[1][:32] not in result.output
    assert sdk.requests == []


def test_without_signing_material_the_plan_and_the_run_say_renditions_are_unsigned(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path, None)
    plan = invoke("plan", manifest(tmp_path), "-c", cfg, "--rejects", tmp_path / "r.csv")
    assert "no verifiable credentials" in plan.stdout
    result = invoke("run", manifest(tmp_path), "-c", cfg, "--provider", "placeholder", "--json")
    summary = json.loads(result.stdout)
    assert "no verifiable credentials" in summary["provenance"]
    catalog = read_catalog(AssetStore(str(tmp_path / "store")))
    assert set(catalog.column("rendition_credentials").to_pylist()) == {"unsigned"}
    # The placeholder's originals arrive signed, like OpenAI's, by a generator of its own.
    assert all("placeholder" in s for s in catalog.column("c2pa_signer").to_pylist())
    assert Path(summary["report"]).read_text().count('class="cred unsigned"') == 2
