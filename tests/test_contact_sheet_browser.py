"""The contact sheet in a real browser: headless Chromium over the DevTools Protocol.

Every image loads (from file:// and over HTTP), hostile prompts stay text and
run nothing, and a screenshot is kept for review. Without Chromium the test
is skipped, unless ASSETGEN_REQUIRE_BROWSER=1 (CI) makes that a failure.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from assetgen.flows.cli.app import app
from assetgen.tasks.reporting.contact_sheet import report_folder, write_report
from assetgen.tasks.store.assets import AssetStore
from tests.browser import Chromium, Page, find_chromium
from tests.conftest import FAKE_KEY
from tests.fakes.images_api import FakeOpenAI
from tests.helpers import write_manifest

REPO = Path(__file__).resolve().parent.parent
SCRIPT_PROMPT = "A red chair <script>window.__pwned=1</script>"
IMG_PROMPT = 'A blue lamp <img src=x onerror="window.__pwned=1">'
ROWS: list[dict[str, Any]] = [
    {"id": "chair", "prompt": SCRIPT_PROMPT, "campaign": "spring 27", "shop": "eu#1"},
    {"id": "lamp", "prompt": IMG_PROMPT, "campaign": "spring 27", "shop": "eu#1", "n": 2},
    {"id": "vase", "prompt": "A ceramic vase on linen", "campaign": "autumn", "shop": "us"},
    {"id": "refused", "prompt": "Something [[moderation]]", "campaign": "autumn", "shop": "us"},
    {"id": "too-big", "prompt": "A table", "campaign": "autumn", "shop": "us", "size": "1000x1000"},
]
# Everything the page must show, as one JSON-able value.
CHECKS = """(() => {
  const images = [...document.images];
  return {
    images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
    sources: images.map(i => i.getAttribute("src")),
    pwned: window.__pwned === undefined ? null : String(window.__pwned),
    scripts: document.scripts.length,
    handlers: document.querySelectorAll("[onerror], [onload]").length,
    text: document.body.innerText,
  };
})()"""


CHROMIUM = find_chromium()
NO_BROWSER = "no chromium on PATH (or $CHROMIUM): the contact sheet is not checked in a browser"
REQUIRED = os.environ.get("ASSETGEN_REQUIRE_BROWSER") == "1"
if CHROMIUM is None and not REQUIRED:
    # Here, not in a fixture: before the session's Prefect server starts for nothing.
    pytest.skip(NO_BROWSER, allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    if CHROMIUM is None:
        pytest.fail(f"ASSETGEN_REQUIRE_BROWSER=1 but {NO_BROWSER}")
    with Chromium(CHROMIUM) as chromium:
        yield chromium


def run(server: FakeOpenAI, manifest: str, store: Path, config: Path) -> dict[str, Any]:
    args = ["run", manifest, "-c", str(config), "--store", str(store), "--json"]
    args += ["--provider", "openai", "--ipm", "60000"]
    env = {"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": server.base_url, "COLUMNS": "1000"}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


@pytest.fixture
def sheet(prefect_harness: None, fake: FakeOpenAI, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A store with a run's contact sheet: new, already stored, refused and rejected rows."""
    config = tmp_path / "job.yaml"
    config.write_text("partition_by: [campaign, shop]\n")
    root = tmp_path / "store"
    run(fake, write_manifest(str(tmp_path / "first.csv"), ROWS[:1]), root, config)
    store = AssetStore(str(root))
    stored = set(store.existing())
    summary = run(fake, write_manifest(str(tmp_path / "all.csv"), ROWS), root, config)
    assert (summary["generated"], summary["skipped_existing"]) == (3, 1)
    assert (summary["failed"], summary["rejected"]) == (1, 1)
    write_report(store, summary, stored)
    return root / report_folder(summary["run_id"]) / "index.html", summary


@pytest.fixture
def http_root(sheet: tuple[Path, dict[str, Any]]) -> Iterator[str]:
    """The store served on 127.0.0.1, as a static web server (or an S3 website) would."""
    root = sheet[0].parent.parent.parent

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def check(page: Page, url: str, expected_images: int) -> dict[str, Any]:
    page.navigate(url)
    found = page.evaluate(CHECKS)
    assert found["images"] == expected_images, found["sources"]
    assert found["broken"] == [], found["broken"]
    assert all(src.startswith("../../") for src in found["sources"])
    assert found["pwned"] is None
    assert found["scripts"] == 0 and found["handlers"] == 0
    assert SCRIPT_PROMPT in found["text"] and IMG_PROMPT in found["text"]
    assert "moderation_blocked" in found["text"]  # the refused row's reason, not an image
    assert "multiples of 16" in found["text"]  # the rejected row
    assert "campaign=spring 27 / shop=eu#1" in found["text"]
    return found


def test_contact_sheet_loads_every_image_and_runs_no_manifest_text(
    browser: Chromium, sheet: tuple[Path, dict[str, Any]], http_root: str
) -> None:
    index, summary = sheet
    expected = summary["generated"] + summary["skipped_existing"]
    with browser.page() as page:
        check(page, index.as_uri(), expected)
        store_path = index.relative_to(index.parent.parent.parent).as_posix()
        check(page, f"{http_root}/{store_path}", expected)

        page.navigate(index.as_uri())
        artifacts = Path(os.environ.get("ASSETGEN_TEST_ARTIFACTS") or REPO / "build/test-artifacts")
        shot = page.screenshot(artifacts / "contact-sheet.png", width=1280)
    assert shot.stat().st_size > 20_000
    with Image.open(shot) as img:
        assert img.format == "PNG" and img.width == 1280 and img.height > 600
        # Not a blank page: the thumbnails and text make many colours.
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50
