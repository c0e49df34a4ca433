"""The review app (`assetgen review serve`) in a real browser and under hostile requests.

Playwright for Python drives the system Chromium (`executable_path`, no
browser download): approve by click, reject by keyboard with a note, bulk
approval of a selection, two sessions at once, a hostile prompt, an S3 store.
httpx (and http.client, for paths it would tidy up) sends what a browser
would not: no token, no CSRF token, another Origin, a foreign Host, path
tricks. Stores are made by the real pipeline (placeholder provider, plain
functions, no Prefect server), once per module, and copied per test.
Without Chromium the browser tests are skipped, unless
ASSETGEN_REQUIRE_BROWSER=1 (CI) makes that a failure.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

from assetgen.flows.cli.app import app as cli_app
from assetgen.tasks.catalog.table import query
from assetgen.tasks.config.job import load_job_config
from assetgen.tasks.config.models import load_model_table
from assetgen.tasks.generation.placeholder import PlaceholderProvider
from assetgen.tasks.generation.run import generate
from assetgen.tasks.manifest.rows import RowContext
from assetgen.tasks.plan.jobs import Planner
from assetgen.tasks.plan.pricing import load_price_table
from assetgen.tasks.review.app import create_app
from assetgen.tasks.review.decisions import read_decisions
from assetgen.tasks.review.security import HostRule
from assetgen.tasks.review.server import bind, in_thread
from assetgen.tasks.store.assets import AssetStore, asset_folder, now_utc
from tests.browser import find_chromium
from tests.conftest import FAKE_KEY
from tests.helpers import plan_all, write_manifest

SCRIPT_PROMPT = "A red chair <script>window.__pwned=1;console.log('PWNED')</script>"
IMG_PROMPT = 'A blue lamp <img src=x onerror="window.__pwned=2">'
NOTE_HTML = "<b>wrong</b> <img src=x onerror=\"window.__pwned='note'\"> colour"
ROWS: list[dict[str, Any]] = [
    {"id": "chair", "prompt": SCRIPT_PROMPT, "campaign": "spring"},
    {"id": "lamp", "prompt": IMG_PROMPT, "campaign": "spring"},
    {"id": "sofa", "prompt": "A green sofa", "campaign": "spring"},
    {
        "id": "mug",
        "prompt": "The mug on an oak desk",
        "campaign": "fall",
        "reference_images": "mug.png",
    },
    {"id": "vase", "prompt": "A ceramic vase", "campaign": "fall"},
    {"id": "rug", "prompt": "A striped rug", "campaign": "fall"},
]
# The grid's order: by partition, then manifest row.
ORDER = ["mug", "vase", "rug", "chair", "lamp", "sofa"]
CONFIG = {
    "partition_by": ["campaign"],
    "renditions": ["thumb", "og"],
    "defaults.quality": "low",
    "defaults.size": "1024x1024",
    "limits.ipm": 60_000,
}
TOKEN = "t0ken-for-tests"
# Resolves when every image of the page has loaded or failed: whether all loaded. (Not
# wait_for_function: its predicate is a string the page's CSP, rightly, will not eval.)
ALL_LOADED = """async () => {
  const images = [...document.images];
  await Promise.all(images.map((i) => i.complete ? null : new Promise((done) => {
    i.addEventListener("load", done, {once: true});
    i.addEventListener("error", done, {once: true});
  })));
  return images.every((i) => i.naturalWidth > 0);
}"""

CHROMIUM = find_chromium()
REQUIRED = os.environ.get("ASSETGEN_REQUIRE_BROWSER") == "1"


# --- stores ----------------------------------------------------------------------------------


def make_assets(store_url: str, manifest: str, **overrides: Any) -> dict[str, str]:
    """Generate the manifest's rows into the store (placeholder, no Prefect); row_id -> asset_id.

    In a thread of its own: generate() runs an event loop, which Playwright's
    sync API (holding one in this thread) would not allow.
    """
    cfg = load_job_config(None, {**CONFIG, **overrides, "store": store_url})
    prices = load_price_table()
    jobs, rejects = plan_all(Planner(RowContext.build(cfg, load_model_table()), prices), manifest)
    assert not rejects, rejects
    store = AssetStore(store_url)
    with ThreadPoolExecutor(1) as pool:
        report = pool.submit(
            generate, jobs, cfg, store, "run-1", now_utc(), prices, PlaceholderProvider(prices)
        ).result()
    assert report.catalog_rows == len(jobs)
    return {j.row_id: j.asset_id for j in jobs}


@dataclass
class Made:
    """A generated store to copy: its folder, the manifest, row_id -> asset_id."""

    root: Path
    manifest: str
    ids: dict[str, str]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    root = tmp_path_factory.mktemp("review")
    Image.new("RGB", (640, 480), "teal").save(root / "mug.png")
    manifest = write_manifest(str(root / "m.csv"), ROWS)
    ids = make_assets(str(root / "store"), manifest)
    return Made(root / "store", manifest, ids)


@pytest.fixture
def store(made: Made, tmp_path: Path) -> AssetStore:
    """A fresh copy of the generated store (references stay where the manifest is)."""
    shutil.copytree(made.root, tmp_path / "store")
    return AssetStore(str(tmp_path / "store"))


@dataclass
class Served:
    url: str  # base URL, no token
    port: int
    store: AssetStore

    def login(self) -> str:
        return f"{self.url}/?token={TOKEN}"


@contextmanager
def serving(store: AssetStore, **options: Any) -> Iterator[Served]:
    """The app on a free port of 127.0.0.1, in a thread of this process."""
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = create_app(
        store,
        token=TOKEN,
        hosts=HostRule.for_bind("127.0.0.1", port),
        reviewer=options.pop("reviewer", "tester"),
        **{"state": "all", **options},
    )
    with in_thread(app, sock):
        yield Served(f"http://127.0.0.1:{port}", port, store)


def listed(store: AssetStore) -> dict[str, dict[str, Any]]:
    """`assetgen review list --json`: asset_id -> row."""
    result = CliRunner().invoke(cli_app, ["review", "list", "--store", store.url, "--json"])
    assert result.exit_code == 0, result.output
    return {r["asset_id"]: r for r in map(json.loads, result.stdout.splitlines())}


def states(store: AssetStore) -> dict[str, tuple[str, str | None, str | None]]:
    """row_id -> (state, reviewer, note) of the current assets."""
    return {
        r["row_id"]: (r["review_state"], r["reviewed_by"], r["review_note"])
        for r in listed(store).values()
    }


def logged_in(base: Served) -> httpx.Client:
    client = httpx.Client(base_url=base.url, trust_env=False, timeout=20)
    first = client.get(f"/?token={TOKEN}")
    assert first.status_code == 303 and TOKEN not in first.headers["location"]
    return client


def csrf_of(client: httpx.Client) -> str:
    page = client.get("/")
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found
    return found.group(1)


# --- browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        if REQUIRED:
            pytest.fail("ASSETGEN_REQUIRE_BROWSER=1 but no chromium on PATH (or $CHROMIUM)")
        pytest.skip("no chromium on PATH (or $CHROMIUM): the review app is not checked in one")
    if REQUIRED:
        from playwright.sync_api import sync_playwright
    else:
        sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            # Root in containers and CI has no user namespace sandbox.
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield chromium
        chromium.close()


@dataclass
class Watched:
    """A page and what it said: console lines, dialogs, page errors."""

    page: Any
    console: list[str]
    dialogs: list[str]
    errors: list[str]


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[[str], Watched]]:
    contexts = []

    def open_(url: str) -> Watched:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        watched = Watched(page, [], [], [])
        page.on("console", lambda m: watched.console.append(m.text))
        page.on("pageerror", lambda e: watched.errors.append(str(e)))

        def dialog(d: Any) -> None:
            watched.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", dialog)
        page.goto(url)
        assert page.evaluate(ALL_LOADED)
        return watched

    yield open_
    for context in contexts:
        context.close()


def card(page: Any, asset_id: str) -> Any:
    return page.locator(f'.card[data-id="{asset_id}"]')


# --- the real command ------------------------------------------------------------------------


def start_cli(*args: str) -> tuple[subprocess.Popen[str], str]:
    """`assetgen review serve --no-open --port 0 ...` as a process; it and its URL line."""
    exe = str(Path(sys.executable).parent / "assetgen")
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "OPENAI_API_KEY": FAKE_KEY}
    proc = subprocess.Popen(
        [exe, "review", "serve", "--no-open", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline().strip() if ready else ""
    if not re.fullmatch(r"http://[\w.\[\]:-]+:\d+/\?token=[\w-]{20,}", line):
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"no URL line from review serve: {line!r}\n{err}")
    return proc, line


def stop_cli(proc: subprocess.Popen[str], sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    return proc.returncode, err


# --- tests -----------------------------------------------------------------------------------


def test_click_keys_and_selection_decide_exactly_those_assets(
    store: AssetStore, made: Made, open_page: Callable[[str], Watched]
) -> None:
    proc, url = start_cli("--store", store.url, "--state", "all", "--reviewer", "Ana")
    try:
        watched = open_page(url)
        page = watched.page
        assert "token=" not in page.url  # the token went into a cookie, out of the URL
        ids = [made.ids[r] for r in ORDER]
        assert page.locator(".card").evaluate_all("cs => cs.map(c => c.dataset.id)") == ids
        # The references of the image-to-image row are beside its image, loaded.
        mug = card(page, made.ids["mug"])
        assert mug.locator(".ref img").evaluate("i => i.naturalWidth") == 640
        assert card(page, made.ids["vase"]).locator(".ref").count() == 0

        # 1. Approve by click.
        card(page, made.ids["mug"]).get_by_role("button", name="Approve").click()
        from playwright.sync_api import expect

        expect(mug.locator("[data-badge]")).to_have_text("approved")
        expect(page.locator('[data-count="approved"]')).to_have_text("1")
        # 2. Reject by keyboard: j moves on, r opens the note, Enter rejects.
        page.keyboard.press("j")
        expect(card(page, made.ids["vase"])).to_be_focused()
        page.keyboard.press("r")
        note = card(page, made.ids["vase"]).locator("form.reject-note input")
        expect(note).to_be_focused()
        page.keyboard.type("vase is cropped")
        page.keyboard.press("Enter")
        vase = card(page, made.ids["vase"])
        expect(vase.locator("[data-badge]")).to_have_text("rejected")
        expect(vase.locator("[data-note]")).to_have_text("vase is cropped")
        expect(note).to_be_hidden()
        # 3. Select two (x, and a click on a checkbox), approve both with Shift+A.
        page.keyboard.press("j")
        page.keyboard.press("x")
        card(page, made.ids["chair"]).locator("input.select").click()
        expect(page.locator("#selected-count")).to_have_text("2")
        page.keyboard.press("Shift+A")
        for row_id in ("rug", "chair"):
            expect(card(page, made.ids[row_id]).locator("[data-badge]")).to_have_text("approved")
        expect(page.locator("#selection")).to_be_hidden()
        expect(page.locator('[data-count="pending"]')).to_have_text("2")
        assert not watched.errors and not watched.dialogs
        assert not [m for m in watched.console if "Content Security Policy" in m]
    finally:
        code, err = stop_cli(proc, signal.SIGTERM)
    assert code == 0, err
    assert "review app stopped" in err and "Traceback" not in err
    assert states(store) == {
        "mug": ("approved", "Ana", None),
        "vase": ("rejected", "Ana", "vase is cropped"),
        "rug": ("approved", "Ana", None),
        "chair": ("approved", "Ana", None),
        "lamp": ("pending", None, None),
        "sofa": ("pending", None, None),
    }


def test_two_sessions_deciding_at_once_lose_nothing(
    store: AssetStore, made: Made, open_page: Callable[[str], Watched]
) -> None:
    from playwright.sync_api import expect

    with serving(store) as served:
        alice = open_page(served.login() + "&part=campaign%3Dspring").page
        bob = open_page(served.login() + "&part=campaign%3Dfall").page
        for page, name in ((alice, "alice"), (bob, "bob")):
            page.locator("#reviewer").fill(name)
            page.locator("#reviewer").press("Enter")
            expect(page.locator("#status")).to_have_text(f"deciding as {name}")
        # Alice approves her page, Bob rejects his, and a third session on Alice's
        # partition takes one of her assets back: all three requests at once.
        shared = made.ids["sofa"]
        bob_also = open_page(served.login() + "&part=campaign%3Dspring").page
        alice.keyboard.press("Shift+X")
        bob.keyboard.press("Shift+X")
        bob.locator("#bulk-reject input").fill("off-brand colours")
        alice.keyboard.press("Shift+A")  # dispatched; the request runs in the browser
        bob.locator("#bulk-reject input").press("Enter")
        card(bob_also, shared).get_by_role("button", name="Undo").click()
        for row_id in ("chair", "lamp", "sofa"):
            expect(card(alice, made.ids[row_id]).locator("[data-badge]")).to_have_text("approved")
        for row_id in ("mug", "vase", "rug"):
            expect(card(bob, made.ids[row_id]).locator("[data-badge]")).to_have_text("rejected")
        expect(bob_also.locator("#status")).to_contain_text("undone")
    found = states(store)
    for row_id in ("chair", "lamp"):
        assert found[row_id] == ("approved", "alice", None)
    for row_id in ("mug", "vase", "rug"):
        assert found[row_id] == ("rejected", "bob", "off-brand colours")
    # Every decision is in the store; the catalog holds what they add up to.
    folder = asset_folder({"campaign": "spring"}, shared)
    made_here = read_decisions(store, folder)
    assert sorted(d.state for d in made_here) == ["approved", "undo"]
    by = {d.state: d.reviewer for d in made_here}
    assert by["approved"] == "alice" and by["undo"] == "tester"
    # An undo taken before the approval undid nothing; one taken after took it back.
    undo_last = made_here[-1].state == "undo"
    assert found["sofa"][0] == ("pending" if undo_last else "approved")


def test_a_hostile_prompt_and_note_stay_text_and_run_nothing(
    store: AssetStore, made: Made, open_page: Callable[[str], Watched]
) -> None:
    from playwright.sync_api import expect

    with serving(store) as served:
        watched = open_page(served.login())
        page = watched.page
        chair = card(page, made.ids["chair"])
        expect(chair.locator(".prompt")).to_have_text(SCRIPT_PROMPT)
        expect(card(page, made.ids["lamp"]).locator(".prompt")).to_have_text(IMG_PROMPT)
        chair.get_by_role("button", name="Reject…").click()
        chair.locator("form.reject-note input").fill(NOTE_HTML)
        chair.locator("form.reject-note input").press("Enter")
        expect(chair.locator("[data-note]")).to_have_text(NOTE_HTML)
        page.reload()
        assert page.evaluate(ALL_LOADED)
        expect(card(page, made.ids["chair"]).locator("[data-note]")).to_have_text(NOTE_HTML)
        # The detail view, opened by keyboard, shows it as text too.
        card(page, made.ids["chair"]).locator(".prompt").click()  # focuses the card
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(rf"/a/{made.ids['chair']}"))
        assert page.evaluate(ALL_LOADED)
        expect(page.locator(".card.solo .prompt")).to_have_text(SCRIPT_PROMPT)
        expect(page.locator("table.history")).to_contain_text(NOTE_HTML)
        assert page.evaluate("window.__pwned") is None
        assert page.evaluate("document.querySelectorAll('[onerror]').length") == 0
        assert page.evaluate("document.querySelectorAll('script:not([src])').length") == 0
        page.keyboard.press("Escape")
        page.wait_for_url(re.compile(rf"^{served.url}/\?"))
    assert not watched.dialogs and not watched.errors
    assert not [m for m in watched.console if "PWNED" in m or "Content Security Policy" in m]


def test_without_token_csrf_origin_or_host_nothing_is_answered(
    store: AssetStore, made: Made, monkeypatch: pytest.MonkeyPatch
) -> None:
    some = made.ids["mug"]
    with serving(store) as served:
        plain = httpx.Client(base_url=served.url, trust_env=False, timeout=20)
        for path in ("/", f"/a/{some}", f"/a/{some}/original", "/static/review.js"):
            refused = plain.get(path)
            assert refused.status_code == 401, path
            assert "no access token" in refused.text
            assert refused.headers["content-security-policy"].startswith("default-src 'self'")
        assert plain.get("/?token=wrong").status_code == 401
        body = {"ids": [some], "verdict": "approved"}
        assert plain.post("/api/decide", json=body).status_code == 401

        # The token opens a session: an HttpOnly, SameSite=Strict cookie; the token leaves the URL.
        first = plain.get(f"/?token={TOKEN}&state=pending")
        assert first.status_code == 303 and first.headers["location"] == "/?state=pending"
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        client = plain  # has the cookie now
        page = client.get("/")
        assert page.status_code == 200
        for header, value in (
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("x-frame-options", "DENY"),
        ):
            assert page.headers[header] == value
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "img-src 'self'" in csp
        assert "unsafe-inline" not in csp and "<style" not in page.text
        assert not re.search(r"<script(?![^>]*\bsrc=)", page.text) and " style=" not in page.text
        csrf = csrf_of(client)
        me = {"origin": served.url, "x-csrf-token": csrf}
        for headers, why in (
            ({"origin": served.url}, "CSRF"),
            ({**me, "x-csrf-token": csrf[:-1] + "x"}, "CSRF"),
            ({**me, "origin": "http://evil.example"}, "cross-origin"),
            ({**me, "origin": "null"}, "cross-origin"),
            ({**me, "origin": f"http://localhost:{served.port + 1}"}, "cross-origin"),
            ({"x-csrf-token": csrf}, "Origin or Referer"),
            ({"x-csrf-token": csrf, "referer": "http://evil.example/"}, "Origin or Referer"),
        ):
            refused = client.post("/api/decide", json=body, headers=headers)
            assert refused.status_code == 403 and why in refused.text, (headers, refused.text)
        form = client.post(
            "/api/decide", content=b"ids=x", headers={**me, "content-type": "text/plain"}
        )
        assert form.status_code == 403
        # A GET never changes anything.
        assert client.get("/api/decide").status_code == 405
        assert listed(store)[some]["review_state"] == "pending"
        ok = client.post(
            "/api/decide", json=body, headers={"x-csrf-token": csrf, "referer": f"{served.url}/"}
        )
        assert ok.status_code == 200 and ok.json()["states"][some]["review_state"] == "approved"

        # DNS rebinding: a name that is not this app's, even with the token or the cookie.
        for host in ("evil.example", f"evil.example:{served.port}", f"127.0.0.1:{served.port + 1}"):
            for path in ("/", f"/?token={TOKEN}", f"/a/{some}/original"):
                refused = client.get(path, headers={"host": host})
                assert refused.status_code == 403 and "unknown Host" in refused.text, (host, path)
        assert client.get("/", headers={"host": f"localhost:{served.port}"}).status_code == 200

        # Nothing the app serves holds a key.
        monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
        bodies = [client.get(p).content for p in ("/", f"/a/{some}", "/static/review.js")]
        for served_body in bodies:
            assert FAKE_KEY.encode() not in served_body and b"PRIVATE KEY" not in served_body


def test_path_tricks_reach_no_file(
    store: AssetStore, made: Made, monkeypatch: pytest.MonkeyPatch
) -> None:
    some = made.ids["mug"]
    with serving(store) as served:
        client = logged_in(served)
        csrf = csrf_of(client)
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        assert client.get(f"/a/{some}/original").status_code == 200  # the references are cached
        assert client.get(f"/a/{some}/reference/0").status_code == 200
        reads: list[str] = []
        real = store.fs.cat_file

        def recording(path: str, *args: Any, **kwargs: Any) -> Any:
            reads.append(str(path))
            return real(path, *args, **kwargs)

        monkeypatch.setattr(store.fs, "cat_file", recording)
        host = f"127.0.0.1:{served.port}"
        tricks = [
            "/a/../../../../etc/passwd",
            "/a/%2e%2e/original",
            "/a/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd/original",
            "/a/..%2f..%2fetc%2fpasswd/original",
            "/a/%2Fetc%2Fpasswd/original",
            "/a//etc/passwd/original",
            "//etc/passwd",
            "/a/C:%5Cwindows/original",
            f"/a/{some}%00/original",
            f"/a/{some}/../../../etc/passwd",
            f"/a/{some}/rendition/-1",
            f"/a/{some}/rendition/99",
            f"/a/{some}/rendition/..%2f..%2fasset.json",
            f"/a/{some}/reference/7",
            "/a/0123456789abcdef0123456789abcdef/original",  # alphanumeric, not in the catalog
            "/static/..%2Fapp.py",
            "/static/%2e%2e%2f%2e%2e%2fpyproject.toml",
            "/static/../app.py",
        ]
        for path in tricks:
            # http.client sends the path as written (httpx would tidy the dots away).
            conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=20)
            conn.request("GET", path, headers={"Cookie": cookie, "Host": host})
            answer = conn.getresponse()
            text = answer.read()
            conn.close()
            assert answer.status in (404, 405), (path, answer.status)
            assert b"root:" not in text and b"[project]" not in text
        me = {"origin": served.url, "x-csrf-token": csrf}
        for ids in (["../x"], ["/etc/passwd"], [f"{some}/.."], ["0" * 32], [some, "..%2f"], [7]):
            refused = client.post(
                "/api/decide", json={"ids": ids, "verdict": "approved"}, headers=me
            )
            assert refused.status_code == 404, ids
        assert reads == []  # no request above read anything at all
        assert listed(store)[some]["review_state"] == "pending"


@pytest.mark.slow
def test_an_s3_store_is_served_through_the_app(
    s3_bucket: str, tmp_path: Path, open_page: Callable[[str], Watched]
) -> None:
    from playwright.sync_api import expect

    fs = fsspec.filesystem("s3")
    reference = tmp_path / "mug.png"
    Image.new("RGB", (500, 400), "orange").save(reference)
    fs.put_file(str(reference), f"{s3_bucket}/in/mug.png")
    manifest = write_manifest(f"{s3_bucket}/in/m.csv", ROWS[3:5])
    ids = make_assets(f"{s3_bucket}/assets", manifest)
    store = AssetStore(f"{s3_bucket}/assets")
    with serving(store) as served:
        watched = open_page(served.login())  # waits for every image: naturalWidth > 0
        page = watched.page
        sizes = page.evaluate("[...document.images].map(i => [i.naturalWidth, i.naturalHeight])")
        assert sorted(sizes) == [[256, 256], [256, 256], [500, 400]]
        card(page, ids["mug"]).locator("a.id").click()
        page.wait_for_url(re.compile(rf"/a/{ids['mug']}"))
        assert page.evaluate(ALL_LOADED)
        # The original at full size, every rendition (og: the cover crop), the reference.
        shown = page.evaluate(
            "[...document.images].map(i => [i.alt, i.naturalWidth, i.naturalHeight])"
        )
        assert [w for _, w, _ in shown] == [1024, 256, 1200, 500], shown
        page.get_by_role("button", name=re.compile("Approve")).click()
        expect(page.locator(".card.solo [data-badge]")).to_have_text("approved")
    assert states(store)["mug"][0] == "approved"


def test_a_new_version_of_an_approved_asset_starts_pending(store: AssetStore, made: Made) -> None:
    old = made.ids["sofa"]
    with serving(store, state="pending", check_s=0) as served:
        client = logged_in(served)
        me = {"origin": served.url, "x-csrf-token": csrf_of(client)}
        decided = client.post("/api/decide", json={"ids": [old], "verdict": "approved"}, headers=me)
        assert decided.status_code == 200
        assert old not in client.get("/").text  # approved: off the pending page
        # The same rows again under a new style_version: new assets in the same slots.
        again = make_assets(store.url, made.manifest, style_version="winter-2")
        new = again["sofa"]
        assert new != old
        page = client.get("/").text  # the listing sees the new table version
        assert f'data-id="{new}"' in page and f'data-id="{old}"' not in page
        detail = client.get(f"/a/{new}")
        assert detail.status_code == 200 and old in detail.text  # its earlier version, linked
        assert client.get(f"/a/{old}").status_code == 200  # still reachable by id
    rows = listed(store)
    assert rows[new]["review_state"] == "pending"
    assert old not in rows  # superseded: no longer a current asset
    older = query(
        store, [("asset_id", old)], "generated", columns=["review_state", "superseded_by"]
    )
    assert older.to_pylist() == [{"review_state": "approved", "superseded_by": new}]


def test_bound_beyond_loopback_warns_and_checks_the_host(store: AssetStore) -> None:
    proc, url = start_cli("--store", store.url, "--host", "0.0.0.0")
    port = int(url.split(":")[2].split("/")[0])
    try:
        client = httpx.Client(trust_env=False, timeout=20)
        assert client.get(url).status_code == 303
        assert client.get(url, headers={"host": f"rebind.example:{port}"}).status_code == 403
        assert client.get(url, headers={"host": f"192.0.2.7:{port}"}).status_code == 303
    finally:
        code, err = stop_cli(proc, signal.SIGINT)
    assert code == 0 and "warning: the review app listens on 0.0.0.0" in err, err
