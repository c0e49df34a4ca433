"""The review web app: a grid of cards to approve or reject, served from the store.

    GET  /                         the grid (filters: state, part, run; pages: after, before)
    GET  /a/<asset_id>             one asset: the original full size, every rendition,
                                   its references, its decisions
    GET  /a/<asset_id>/original    images, read through the store's filesystem
    GET  /a/<asset_id>/rendition/<n>
    GET  /a/<asset_id>/reference/<n>
    POST /api/decide               {"ids": [...], "verdict": "approved|rejected|undo", "note"}
    POST /api/reviewer             {"name": ...}: who this browser decides as
    GET  /static/<name>            the page's JS, CSS and icon

Every request passes security.Guard first (token, cookie, CSRF, Host, Origin,
headers). An asset id is checked before anything is read: alphanumeric, and
an asset the app lists (the catalog's generated assets matching `serve`'s
--where and --run); the files it leads to come from its catalog row. A
decision goes through tasks.review.record: the store first, then the catalog.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from assetgen.tasks.review.decisions import NOTE_MAX, STATES, UNDO, read_decisions
from assetgen.tasks.review.listing import ALL, CHECK_S, PAGE_SIZE, Filter, Listing, Snapshot
from assetgen.tasks.review.media import NotServed, References, original, rendition
from assetgen.tasks.review.pages import (
    card,
    grouped,
    metadata,
    original_image,
    reference_image,
    render,
    renditions,
    static_files,
)
from assetgen.tasks.review.record import UnknownAsset, decide, reviewable
from assetgen.tasks.review.security import Guard, HostRule, Session, Sessions
from assetgen.tasks.store.assets import AssetStore, asset_folder

log = logging.getLogger(__name__)
MAX_IDS = 500  # per decision request: a page is PAGE_SIZE; the CLI is there for more
MAX_BODY = 256 * 1024
ID_MAX = 64
VERDICTS = ("approved", "rejected", UNDO)
NO_STORE = {"cache-control": "no-store"}
# Originals and references are fixed bytes per asset id; renditions may be made again.
IMMUTABLE = {"cache-control": "private, max-age=86400"}
RENEWABLE = {"cache-control": "private, max-age=300"}


@dataclass
class Review:
    """What the routes share: the store, its listing, and who decides by default."""

    store: AssetStore
    listing: Listing
    reviewer: str
    default_state: str = "pending"
    page_size: int = PAGE_SIZE
    references: References = field(init=False)
    deciding: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.references = References(self.store)


def create_app(
    store: AssetStore,
    *,
    token: str,
    hosts: HostRule,
    reviewer: str,
    where: list[tuple[str, str]] | None = None,
    run: str | None = None,
    state: str = "pending",
    page_size: int = PAGE_SIZE,
    check_s: float = CHECK_S,
) -> Guard:
    """The app for `store` (limited to `where` and the rows of `run`), guarded by `token`,
    answering `hosts`.

    `check_s`: how often at most the catalog's version is looked up (decisions
    made here are seen at once; those made elsewhere after at most this long).
    """
    if state not in (*STATES, ALL):
        raise ValueError(f"state {state!r}: expected one of {', '.join((*STATES, ALL))}")
    review = Review(store, Listing(store, where or [], check_s, run), reviewer, state, page_size)

    def route(path: str, endpoint: Any, methods: list[str]) -> Route:
        async def call(request: Request) -> Response:
            return await endpoint(review, request)

        return Route(path, call, methods=methods)

    app = Starlette(
        routes=[
            route("/", grid, ["GET"]),
            route("/a/{asset_id}", detail, ["GET"]),
            route("/a/{asset_id}/original", serve_original, ["GET"]),
            route("/a/{asset_id}/rendition/{index:int}", serve_rendition, ["GET"]),
            route("/a/{asset_id}/reference/{index:int}", serve_reference, ["GET"]),
            route("/api/decide", decide_api, ["POST"]),
            route("/api/reviewer", reviewer_api, ["POST"]),
            route("/static/{name}", static, ["GET"]),
        ]
    )
    return Guard(app, token, hosts, Sessions())


# --- checks ----------------------------------------------------------------------------------


def session_of(request: Request) -> Session:
    return request.scope["state"]["session"]


def valid_id(text: Any) -> bool:
    """What an asset id looks like (asset_folder refuses anything else too)."""
    return isinstance(text, str) and 0 < len(text) <= ID_MAX and text.isascii() and text.isalnum()


async def listed(review: Review, asset_ids: list[str]) -> Snapshot | None:
    """The snapshot holding every one of `asset_ids`, or None: one is not an asset listed.

    An id the snapshot lacks may be an asset committed since: looked up once more.
    """
    if not all(valid_id(a) for a in asset_ids):
        return None
    snap = await run_in_threadpool(review.listing.snapshot)
    if all(a in snap for a in asset_ids):
        return snap
    review.listing.invalidate()
    snap = await run_in_threadpool(review.listing.snapshot)
    return snap if all(a in snap for a in asset_ids) else None


def filter_of(request: Request, snap: Snapshot, default_state: str) -> Filter:
    """The grid's filters from the query, each kept only if it is one the snapshot has."""
    q = request.query_params
    state = q.get("state", default_state)
    part, run = q.get("part"), q.get("run")
    return Filter(
        state=state if state in (*STATES, ALL) else default_state,
        part=part if part in set(snap.partitions) else None,
        run=run if run in set(snap.run_ids) else None,
    )


def not_found(what: str = "no such asset") -> Response:
    return Response(f"404: {what}\n", 404, media_type="text/plain", headers=NO_STORE)


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status, headers=NO_STORE)


# --- pages -----------------------------------------------------------------------------------


async def grid(review: Review, request: Request) -> Response:
    snap = await run_in_threadpool(review.listing.snapshot)
    flt = filter_of(request, snap, review.default_state)
    q = request.query_params
    page = snap.page(flt, q.get("after"), q.get("before"), review.page_size)
    # At once: on S3 each sidecar read is a round trip (cached per asset afterwards).
    refs = await asyncio.gather(
        *(run_in_threadpool(review.references.of, row) for row in page.rows)
    )
    cards = [card(row, r) for row, r in zip(page.rows, refs, strict=True)]
    html = render(
        "grid.html.j2",
        csrf=session_of(request).csrf,
        reviewer=session_of(request).reviewer or review.reviewer,
        store=review.store.url,
        flt=flt,
        page=page,
        counts=page.counts,
        groups=grouped(cards),
        partitions=snap.partitions,
        runs=snap.run_ids,
        states=STATES,
        here=flt.query(),
        shown_from=page.first + 1 if cards else 0,
        shown_to=page.first + len(cards),
    )
    return HTMLResponse(html, headers=NO_STORE)


async def detail(review: Review, request: Request) -> Response:
    asset_id = request.path_params["asset_id"]
    snap = await listed(review, [asset_id])
    if snap is None:
        return not_found()
    row = snap.row(asset_id)
    flt = filter_of(request, snap, review.default_state)
    folder = asset_folder(dict(row.get("partition") or []), asset_id)
    refs, history = await run_in_threadpool(
        lambda: (review.references.of(row), read_decisions(review.store, folder))
    )
    prev, nxt = snap.neighbours(asset_id, flt)
    shown = card(row, refs)
    html = render(
        "detail.html.j2",
        csrf=session_of(request).csrf,
        reviewer=session_of(request).reviewer or review.reviewer,
        store=review.store.url,
        flt=flt,
        counts=snap.counts(flt),
        states=STATES,
        here=flt.query(),
        c=shown,
        row=row,
        original=original_image(row),
        renditions=renditions(row),
        references=[reference_image(asset_id, r) for r in refs],
        metadata=metadata(row),
        history=list(reversed(history)),
        current_sha=row.get("original_sha256"),
        versions=snap.versions(asset_id),
        prev=prev,
        next=nxt,
    )
    return HTMLResponse(html, headers=NO_STORE)


# --- images ----------------------------------------------------------------------------------


async def _image(review: Review, request: Request, read: Any, headers: dict[str, str]) -> Response:
    asset_id = request.path_params["asset_id"]
    snap = await listed(review, [asset_id])
    if snap is None:
        return not_found()
    row = snap.row(asset_id)
    try:
        data, kind = await run_in_threadpool(read, row)
    except NotServed:
        return not_found("no such image")
    return Response(data, media_type=kind, headers=headers)


async def serve_original(review: Review, request: Request) -> Response:
    return await _image(review, request, lambda row: original(review.store, row), IMMUTABLE)


async def serve_rendition(review: Review, request: Request) -> Response:
    index = request.path_params["index"]
    return await _image(review, request, lambda row: rendition(review.store, row, index), RENEWABLE)


async def serve_reference(review: Review, request: Request) -> Response:
    index = request.path_params["index"]
    return await _image(review, request, lambda row: review.references.read(row, index), IMMUTABLE)


async def static(review: Review, request: Request) -> Response:
    found = static_files().get(request.path_params["name"])
    if found is None:
        return not_found("no such file")
    data, kind, digest = found
    fresh = request.query_params.get("v") == digest
    cache = "private, max-age=31536000, immutable" if fresh else "no-cache"
    return Response(data, media_type=kind, headers={"cache-control": cache})


# --- decisions -------------------------------------------------------------------------------


async def _json(request: Request) -> dict[str, Any] | None:
    body = await request.body()
    if len(body) > MAX_BODY:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def decide_api(review: Review, request: Request) -> Response:
    data = await _json(request)
    if data is None:
        return error(400, "expected a JSON object")
    ids, verdict, note = data.get("ids"), data.get("verdict"), data.get("note")
    if verdict not in VERDICTS:
        return error(400, f"verdict: expected one of {', '.join(VERDICTS)}")
    if not isinstance(ids, list) or not 0 < len(ids) <= MAX_IDS:
        return error(400, f"ids: a list of 1 to {MAX_IDS} asset ids")
    if note is not None and (not isinstance(note, str) or len(note) > NOTE_MAX):
        return error(400, f"note: text of at most {NOTE_MAX} characters")
    note = (note or "").strip() or None
    if verdict == "rejected" and not note:
        return error(400, "a rejection needs a note saying what is wrong")
    ids = list(dict.fromkeys(ids))
    if await listed(review, ids) is None:
        return error(404, "not an asset of this review")
    reviewer = session_of(request).reviewer or review.reviewer

    def record() -> dict[str, Any]:
        # One at a time in this app: concurrent MERGEs into the catalog conflict and
        # retry (DESIGN.md), so 8 at once took 2.5x as long as the same in a row.
        with review.deciding:
            rows = reviewable(review.store, ids)
            return decide(review.store, rows, verdict, reviewer, None if verdict == UNDO else note)

    try:
        states = await run_in_threadpool(record)
    except UnknownAsset as e:
        return error(404, str(e))
    except Exception as e:  # the store or the catalog failed: say so, keep serving
        log.exception("recording %s for %d assets failed", verdict, len(ids))
        return error(500, f"not recorded ({type(e).__name__}): see the review app's log")
    finally:
        review.listing.invalidate()
    return JSONResponse(
        {"states": {a: s.model_dump(mode="json") for a, s in states.items()}}, headers=NO_STORE
    )


def clean_name(text: Any) -> str | None:
    """A reviewer name as typed: 1-200 characters, no control characters, else None."""
    if not isinstance(text, str):
        return None
    name = " ".join(text.split())
    if not 0 < len(name) <= 200 or any(unicodedata.category(c).startswith("C") for c in name):
        return None
    return name


async def reviewer_api(review: Review, request: Request) -> Response:
    data = await _json(request)
    name = clean_name((data or {}).get("name"))
    if name is None:
        return error(400, "name: 1 to 200 printable characters")
    session_of(request).reviewer = name
    return JSONResponse({"reviewer": name}, headers=NO_STORE)
